"""Text to image: a prompt (with stacked styles) becomes a grid of 1-4 images on the cached base model.

Images are made one after another, image i with seed s+i: each can be made again alone, a grid needs no
more memory than one image, and finished images can be shown while the next one is denoising.
"""

from __future__ import annotations

from pipelines.diffusion import (
    MAX_PROMPT_CHARS,
    Denoising,
    DiffusionTask,
    GeneratedImage,
    GenerationRequest,
    RunSettings,
    build_pipeline,
    refuse_inpainting_model,
)
from studio.core.cache import BaseModel, Lease

__all__ = ["MAX_PROMPT_CHARS", "GeneratedImage", "TextToImagePipeline", "TextToImageRequest"]


class TextToImageRequest(GenerationRequest):
    aspect_ratio: str = "1:1"


class TextToImagePipeline(DiffusionTask[TextToImageRequest]):
    task = "txt2img"
    request_type = TextToImageRequest
    prompt_required = True

    def check_inputs(self, request: TextToImageRequest) -> None:
        self.presets.aspect_ratio(request.aspect_ratio)

    def prepare(
        self, lease: Lease, base: BaseModel, request: TextToImageRequest, inputs: None, run: RunSettings
    ) -> Denoising:
        refuse_inpainting_model(base, run, "use it for inpainting, or pick a regular model.")
        shape = self.presets.aspect_ratio(request.aspect_ratio)
        width, height = shape.size_for(base.resolution(run.source), base.size_multiple)
        pipe = build_pipeline(base, run, self.presets, "txt2img")
        return Denoising(pipe, (width, height), {"width": width, "height": height})
