"""Image to image: an input image re-imagined with a prompt, as much as `strength` allows.

Runs on the base model already in the cache: the same component objects as text to image, built into an
image-to-image pipeline with this request's own scheduler. Vary (Subtle/Strong) is this task at the
strengths in `presets/variations.json`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

from PIL import Image
from pydantic import ConfigDict, Field

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
    DiffusionRequest,
    GeneratedImage,
    check_prompt_side,
    pipeline_class,
    record,
    resolve_run,
)
from pipelines.images import check_image, resized, working_size
from studio.errors import InvalidRequest
from studio.metadata import GenerationParameters, read_parameters
from studio.model_cache import ModelCache
from studio.models import ModelSource
from studio.presets import Presets


class ImageToImageRequest(DiffusionRequest):
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
        values.update(
            prompt=carried.user_prompt or carried.prompt,
            negative_prompt=carried.user_negative_prompt or carried.negative_prompt,
            styles=carried.styles,
            model=carried.model,
            steps=carried.steps,
            guidance_scale=carried.guidance_scale,
            sampler=carried.sampler,
        )
    elif isinstance(carried, dict):
        values.update(prompt=carried.get("prompt", ""), negative_prompt=carried.get("negative_prompt", ""))
    if prompt.strip():
        values["prompt"] = prompt
    return values


class ImageToImagePipeline:
    task = "img2img"

    def __init__(self, cache: ModelCache, presets: Presets) -> None:
        self.cache = cache
        self.presets = presets

    def check_inputs(self, request: ImageToImageRequest) -> tuple[ModelSource, Image.Image]:
        image = check_image(request.image)
        # A prompt is optional here: the image itself says what to draw.
        return check_prompt_side(request, self.presets, prompt_required=False), image

    def __call__(
        self,
        request: ImageToImageRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> list[GeneratedImage]:
        return list(self.generate(request, progress, is_cancelled))

    def generate(
        self,
        request: ImageToImageRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> Iterator[GeneratedImage]:
        # 1. Check inputs and fill in the model preset's defaults
        source, image = self.check_inputs(request)
        run = resolve_run(request, source, self.presets)
        sampler = self.presets.sampler(run.sampler)
        reporter = StepReporter(progress, is_cancelled, request.num_images)
        reporter.check()
        if request.strength > 0:
            # Only steps × strength steps run; at least one must, or nothing would change.
            run = dataclasses.replace(run, steps=max(run.steps, math.ceil(1 / request.strength)))

        # 2. Strength 0 asks for no change: the input comes back untouched, with no model run at all.
        if request.strength == 0:
            for index in range(request.num_images):
                yield GeneratedImage(
                    image.copy(), record(self.task, request, run, index, image.size, denoising_strength=0.0)
                )
            return

        # 3. The base model already in the cache, and the input at a size it can denoise
        with self.cache.use(source) as base:
            if base.is_inpainting:
                raise InvalidRequest(
                    f"{source.name} is an inpainting model: use it in Inpaint, or pick another."
                )
            working = resized(image, working_size(image.size, base.size_multiple))
            # 4. A pipeline around the shared components, with this request's own scheduler
            pipe = base.build(pipeline_class(base.family, self.task), base.new_scheduler(sampler))

            # 5. Denoise image by image from the noised input, image i with seed s+i
            for index in range(request.num_images):
                reporter.image_index = index
                output = self.cache.denoise(
                    base,
                    working.size,
                    lambda index=index: pipe(
                        prompt=run.prompt,
                        negative_prompt=run.negative_prompt or None,
                        image=working,
                        strength=request.strength,
                        num_inference_steps=run.steps,
                        guidance_scale=run.guidance_scale,
                        generator=generator_for(image_seed(run.seed, index)),
                        callback_on_step_end=reporter,
                    ),
                    pipe=pipe,
                )
                # 6. Back at the input's size, with everything needed to make it again
                parameters = record(
                    self.task, request, run, index, image.size, denoising_strength=request.strength
                )
                yield GeneratedImage(resized(output.images[0], image.size), parameters)
