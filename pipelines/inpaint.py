"""Inpaint ("Vary Region"): repaint only the painted part of an image.

Works with ordinary checkpoints (diffusers blends the known latents back at every step) and, when the model
preset names one, with a dedicated inpainting checkpoint, whose UNet is loaded beside the base model and
shares its text encoders and VAE. Pixels away from the mask are the input's exactly: the result is
composited over the original through the (softened) mask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from PIL import Image
from pydantic import ConfigDict, Field

from pipelines.diffusion import Denoising, DiffusionTask, GenerationRequest, RunSettings, build_pipeline
from pipelines.parts.images import (
    InputImage,
    blend_outside_mask,
    check_image,
    check_mask,
    resized,
    working_size,
)
from studio.core.cache import BaseModel, Lease
from studio.core.errors import ModelUnavailable
from studio.core.models import ModelSource, resolve_model

log = logging.getLogger(__name__)


class InpaintRequest(GenerationRequest):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None
    mask: Image.Image | None = None  # white (or opaque) where to repaint
    strength: float = Field(1.0, ge=0, le=1)  # 1 repaints from scratch; lower keeps the old colours
    mask_blur: int = Field(8, ge=0, le=64)  # pixels of soft seam around the painted area


@dataclass(frozen=True)
class MaskedImage(InputImage):
    mask: Image.Image  # "L", white where to repaint
    strength: float
    mask_blur: int


class InpaintPipeline(DiffusionTask[InpaintRequest]):
    task = "inpaint"
    request_type = InpaintRequest
    encodes_image = True

    def check_inputs(self, request: InpaintRequest) -> MaskedImage:
        image = check_image(request.image)
        return MaskedImage(image, check_mask(request.mask, image.size), request.strength, request.mask_blur)

    def strength(self, request: GenerationRequest, inputs: MaskedImage) -> float:
        return inputs.strength

    def extras(self, request: GenerationRequest, inputs: MaskedImage) -> dict[str, Any]:
        return {"denoising_strength": inputs.strength, "mask_blur": inputs.mask_blur}

    def prepare(
        self, lease: Lease, base: BaseModel, request: GenerationRequest, inputs: MaskedImage, run: RunSettings
    ) -> Denoising:
        replacements, checkpoint = self._denoiser_for(lease, base, run.source)
        size = working_size(inputs.image.size, base.size_multiple)
        pipe = build_pipeline(base, run, self.presets, inpaint_kind(base, replacements), **replacements)
        arguments = {
            "image": resized(inputs.image, size),
            "mask_image": resized(inputs.mask, size),
            "width": size[0],
            "height": size[1],
            "strength": inputs.strength,
        }
        return Denoising(pipe, size, arguments, extras={"inpaint_model": checkpoint})

    def finish(self, image: Image.Image, inputs: MaskedImage) -> Image.Image:
        return blend_outside_mask(inputs.image, image, inputs.mask, inputs.mask_blur)

    def _denoiser_for(self, lease: Lease, base: BaseModel, source: ModelSource) -> tuple[dict, str]:
        """The pipeline's components to repaint with in place of the model's own (a dedicated inpainting
        checkpoint's UNet or transformer, where the preset names one), and what to record about it."""
        preset = source.preset
        if preset and preset.inpaint_source and not base.is_inpainting:
            inpaint_source = resolve_model(preset.inpaint_source, self.presets)
            try:
                denoiser = lease.inpaint_denoiser(base, inpaint_source)
                return {base.rules.denoiser: denoiser}, inpaint_source.name
            except ModelUnavailable as error:
                # The ordinary checkpoint inpaints too, a little less cleanly: better than no result.
                log.warning("inpainting with %s itself: %s", source.name, error)
                return {}, f"same as model ({inpaint_source.name} unavailable)"
        return {}, "same as model"


def inpaint_kind(base: BaseModel, replacements: dict[str, Any]) -> str:
    """The kind of pipeline that repaints with `base` (its denoiser swapped for `replacements`'): the
    family's Fill pipeline for a Fill checkpoint's transformer (its input takes the masked image and the
    mask), else its inpaint pipeline (which takes a 9-channel UNet as well as an ordinary one)."""
    dedicated = base.is_inpainting or bool(replacements)
    return "fill" if dedicated and "fill" in base.rules.pipelines else "inpaint"
