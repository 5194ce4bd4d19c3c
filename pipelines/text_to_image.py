"""Text to image: a prompt (with stacked styles) becomes a grid of 1-4 images on the cached base model.

Images are made one after another, image i with seed s+i: each can be made again alone, a grid needs no
more memory than one image, and finished images can be shown while the next one is denoising.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipelines.common import (
    IsCancelled,
    Progress,
    StepReporter,
    generator_for,
    image_seed,
    never_cancelled,
    no_progress,
)
from pipelines.diffusion import (
    MAX_PROMPT_CHARS,
    DiffusionRequest,
    GeneratedImage,
    check_prompt_side,
    pipeline_class,
    record,
    resolve_run,
)
from studio.errors import InvalidRequest
from studio.model_cache import BaseModel, ModelCache
from studio.models import ModelSource
from studio.presets import Presets

__all__ = ["MAX_PROMPT_CHARS", "GeneratedImage", "TextToImagePipeline", "TextToImageRequest"]


class TextToImageRequest(DiffusionRequest):
    aspect_ratio: str = "1:1"


class TextToImagePipeline:
    task = "txt2img"

    def __init__(self, cache: ModelCache, presets: Presets) -> None:
        self.cache = cache
        self.presets = presets

    def check_inputs(self, request: TextToImageRequest) -> ModelSource:
        source = check_prompt_side(request, self.presets, prompt_required=True)
        self.presets.aspect_ratio(request.aspect_ratio)
        return source

    def size_for(self, request: TextToImageRequest, base: BaseModel) -> tuple[int, int]:
        preset = base.source.preset
        resolution = preset.resolution if preset else base.native_resolution
        return self.presets.aspect_ratio(request.aspect_ratio).size_for(resolution, base.size_multiple)

    def __call__(
        self,
        request: TextToImageRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> list[GeneratedImage]:
        return list(self.generate(request, progress, is_cancelled))

    def generate(
        self,
        request: TextToImageRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> Iterator[GeneratedImage]:
        """Yield each image as soon as it is decoded; Stop raises `RunCancelled` between steps."""
        # 1. Check inputs and fill in the model preset's defaults
        source = self.check_inputs(request)
        run = resolve_run(request, source, self.presets)
        sampler = self.presets.sampler(run.sampler)
        reporter = StepReporter(progress, is_cancelled, request.num_images)
        reporter.check()

        # 2. Load the base model, or reuse the one already in the cache; it stays loaded until the end
        with self.cache.use(source) as base:
            if base.is_inpainting:
                raise InvalidRequest(
                    f"{source.name} is an inpainting model: use it for inpainting, or pick a regular model."
                )
            width, height = self.size_for(request, base)
            # 3. A pipeline around the shared components, with this request's own scheduler
            pipe = base.build(pipeline_class(base.family, self.task), base.new_scheduler(sampler))

            # 4. Denoise image by image, image i with seed s+i, one at a time on the GPU
            for index in range(request.num_images):
                seed = image_seed(run.seed, index)
                reporter.image_index = index
                # The generator is made in the call: a retry after out-of-memory starts from the same noise.
                output = self.cache.denoise(
                    base,
                    (width, height),
                    lambda seed=seed: pipe(
                        prompt=run.prompt,
                        negative_prompt=run.negative_prompt or None,
                        width=width,
                        height=height,
                        num_inference_steps=run.steps,
                        guidance_scale=run.guidance_scale,
                        generator=generator_for(seed),
                        callback_on_step_end=reporter,
                    ),
                    pipe=pipe,
                )
                # 5. Record everything needed to make this image again
                parameters = record(self.task, request, run, index, (width, height))
                yield GeneratedImage(output.images[0], parameters)
