"""Inpaint ("Vary Region"): repaint only the painted part of an image.

Works with ordinary checkpoints (diffusers blends the known latents back at every step) and, when the model
preset names one, with a dedicated inpainting checkpoint, whose UNet is loaded beside the base model and
shares its text encoders and VAE. Pixels away from the mask are the input's exactly: the result is
composited over the original through the (softened) mask.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator

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
    RunSettings,
    check_prompt_side,
    pipeline_class,
    record,
    resolve_run,
)
from pipelines.images import blend_outside_mask, check_image, check_mask, resized, working_size
from studio.errors import ModelUnavailable
from studio.model_cache import BaseModel, ModelCache
from studio.models import ModelSource, resolve_model
from studio.presets import Presets

log = logging.getLogger(__name__)


class InpaintRequest(DiffusionRequest):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None
    mask: Image.Image | None = None  # white (or opaque) where to repaint
    strength: float = Field(1.0, ge=0, le=1)  # 1 repaints from scratch; lower keeps the old colours
    mask_blur: int = Field(8, ge=0, le=64)  # pixels of soft seam around the painted area


class InpaintPipeline:
    task = "inpaint"

    def __init__(self, cache: ModelCache, presets: Presets) -> None:
        self.cache = cache
        self.presets = presets

    def check_inputs(self, request: InpaintRequest) -> tuple[ModelSource, Image.Image, Image.Image]:
        image = check_image(request.image)
        mask = check_mask(request.mask, image.size)
        return check_prompt_side(request, self.presets, prompt_required=False), image, mask

    def __call__(
        self,
        request: InpaintRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> list[GeneratedImage]:
        return list(self.generate(request, progress, is_cancelled))

    def generate(
        self,
        request: InpaintRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> Iterator[GeneratedImage]:
        # 1. Check inputs and fill in the model preset's defaults
        source, image, mask = self.check_inputs(request)
        run = resolve_run(request, source, self.presets)
        yield from self.repaint(request, run, image, mask, progress, is_cancelled)

    def repaint(
        self,
        request: DiffusionRequest,
        run: RunSettings,
        image: Image.Image,
        mask: Image.Image,
        progress: Progress,
        is_cancelled: IsCancelled,
        *,
        strength: float | None = None,
        mask_blur: int | None = None,
        task: str | None = None,
        **extras: object,
    ) -> Iterator[GeneratedImage]:
        """Repaint `mask` of `image`; shared with outpainting, which builds its own canvas and mask."""
        strength = request.strength if strength is None else strength
        mask_blur = request.mask_blur if mask_blur is None else mask_blur
        task = task or self.task
        reporter = StepReporter(progress, is_cancelled, request.num_images)
        reporter.check()
        if strength > 0:
            # Only steps × strength steps run; at least one must.
            run = dataclasses.replace(run, steps=max(run.steps, math.ceil(1 / strength)))

        # 2. The base model, and the inpainting UNet its preset names, if any
        with self.cache.use(run.source) as base:
            unet, checkpoint = self._unet_for(base, run.source)
            size = working_size(image.size, base.size_multiple)
            # 3. A pipeline around the shared components, with this request's own scheduler
            sampler = self.presets.sampler(run.sampler)
            pipe = base.build(pipeline_class(base.family, "inpaint"), base.new_scheduler(sampler), unet=unet)

            # 4. Repaint image by image, then put the untouched pixels back exactly
            for index in range(request.num_images):
                reporter.image_index = index
                if strength == 0:
                    repainted = image
                else:
                    repainted = self.cache.denoise(
                        base,
                        size,
                        lambda index=index: pipe(
                            prompt=run.prompt,
                            negative_prompt=run.negative_prompt or None,
                            image=resized(image, size),
                            mask_image=resized(mask, size),
                            width=size[0],
                            height=size[1],
                            strength=strength,
                            num_inference_steps=run.steps,
                            guidance_scale=run.guidance_scale,
                            generator=generator_for(image_seed(run.seed, index)),
                            callback_on_step_end=reporter,
                        ),
                        pipe=pipe,
                    ).images[0]
                result = blend_outside_mask(image, repainted, mask, mask_blur)
                parameters = record(
                    task, request, run, index, image.size,
                    denoising_strength=strength, mask_blur=mask_blur, inpaint_model=checkpoint, **extras,
                )  # fmt: skip
                yield GeneratedImage(result, parameters)

    def _unet_for(self, base: BaseModel, source: ModelSource) -> tuple[object, str]:
        """The UNet to repaint with, and what to record about it."""
        preset = source.preset
        if preset and preset.inpaint_source and not base.is_inpainting:
            inpaint_source = resolve_model(preset.inpaint_source, self.presets)
            try:
                return self.cache.inpaint_unet(base, inpaint_source), inpaint_source.name
            except ModelUnavailable as error:
                # The ordinary checkpoint inpaints too, a little less cleanly: better than no result.
                log.warning("inpainting with %s itself: %s", source.name, error)
                return base.components["unet"], f"same as model ({inpaint_source.name} unavailable)"
        return base.components["unet"], "same as model"
