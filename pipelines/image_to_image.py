"""Image to image: an input image re-imagined with a prompt, as much as `strength` allows.

Runs on the base model already in the cache: the same component objects as text to image, built into an
image-to-image pipeline with this request's own scheduler. Vary (Subtle/Strong) is this task at the
strengths in `presets/variations.json`.
"""

from __future__ import annotations

from typing import Any

from PIL import Image
from pydantic import ConfigDict, Field

from pipelines.diffusion import (
    Denoising,
    DiffusionTask,
    GenerationRequest,
    RunSettings,
    build_pipeline,
    refuse_inpainting_model,
)
from pipelines.parts.images import InputImage, check_image, resized, working_size
from studio.core.cache import BaseModel, Lease
from studio.core.metadata import GenerationParameters, read_parameters


class ImageToImageRequest(GenerationRequest):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None
    strength: float = Field(0.6, ge=0, le=1)  # 0 keeps the input; 1 ignores it


def variation_request(
    image: Image.Image,
    strength: float,
    *,
    prompt: str = "",
    num_images: int = 4,
    seed: int = -1,
) -> dict[str, Any]:
    """Request values for Vary: the image's own parameters (when it carries them) at `strength`.

    Our PNGs give back the prompt as typed, its styles, model and sampling settings; another studio's give
    the prompt and sampling settings; a plain image needs `prompt`, or varies without one.
    """
    carried = read_parameters(image)
    values: dict[str, Any] = {"image": image, "strength": strength, "num_images": num_images, "seed": seed}
    if isinstance(carried, GenerationParameters):
        # As typed, with its styles: they are applied once, by this run.
        values.update(
            prompt=carried.typed_prompt,
            negative_prompt=carried.typed_negative_prompt,
            styles=carried.styles,
            model=carried.model or None,
        )
        if carried.steps:  # it was denoised: its sampling settings come along
            values.update(steps=carried.steps, guidance_scale=carried.guidance_scale, sampler=carried.sampler)
    elif isinstance(carried, dict):
        values.update(prompt=carried.get("prompt", ""), negative_prompt=carried.get("negative_prompt", ""))
    if prompt.strip():
        values["prompt"] = prompt
    return values


class ImageToImagePipeline(DiffusionTask[ImageToImageRequest]):
    task = "img2img"
    request_type = ImageToImageRequest
    encodes_image = True

    def check_inputs(self, request: ImageToImageRequest) -> InputImage:
        # A prompt is optional here: the image itself says what to draw.
        return InputImage(check_image(request.image))

    def strength(self, request: ImageToImageRequest, inputs: InputImage) -> float:
        return request.strength

    def extras(self, request: ImageToImageRequest, inputs: InputImage) -> dict[str, Any]:
        return {"denoising_strength": request.strength}

    def prepare(
        self,
        lease: Lease,
        base: BaseModel,
        request: ImageToImageRequest,
        inputs: InputImage,
        run: RunSettings,
    ) -> Denoising:
        refuse_inpainting_model(base, run, "use it in Inpaint, or pick another.")
        working = resized(inputs.image, working_size(inputs.image.size, base.size_multiple))
        pipe = build_pipeline(base, run, self.presets, "img2img")
        return Denoising(pipe, working.size, {"image": working, "strength": request.strength})

    def finish(self, image: Image.Image, inputs: InputImage) -> Image.Image:
        return resized(image, inputs.image.size)  # back at the input's size
