"""Blend: 2-5 images become a new grid, from their IP-Adapter image embeddings mixed by weight (Midjourney's
/blend). The mixed embedding reaches every block of the UNet, so the images' subjects and looks both come
through (FLUX.1: their Redux tokens, mixed by weight, follow the prompt's); a prompt is optional and steers
it, and the aspect ratio is chosen as in Text to Image (whose style and object references a blend can take
as well).
"""

from __future__ import annotations

from dataclasses import replace

from PIL import Image
from pydantic import Field

from pipelines.parts.image_prompts import BLEND_SCALE, ImagePrompt
from pipelines.parts.images import check_image
from pipelines.text_to_image import (
    ReferenceImages,
    ReferenceWeight,
    TextToImagePipeline,
    TextToImageRequest,
    check_weights,
)
from studio.core.errors import InvalidRequest

MIN_BLEND_IMAGES, MAX_BLEND_IMAGES = 2, 5


class BlendRequest(TextToImageRequest):
    images: tuple[Image.Image, ...] = Field((), max_length=MAX_BLEND_IMAGES)
    image_weights: tuple[ReferenceWeight, ...] = ()  # one per image; none given: equal


class BlendPipeline(TextToImagePipeline):
    task = "blend"
    request_type = BlendRequest
    prompt_required = False

    def check_inputs(self, request: BlendRequest) -> ReferenceImages:
        if len(request.images) < MIN_BLEND_IMAGES:
            raise InvalidRequest(
                f"Give {MIN_BLEND_IMAGES} to {MAX_BLEND_IMAGES} images to blend (got {len(request.images)})."
            )
        check_weights(request.image_weights, len(request.images), "image")
        images = tuple(check_image(image, f"image {n} to blend") for n, image in enumerate(request.images, 1))
        return replace(super().check_inputs(request), blend=images)

    def extras(self, request: BlendRequest, inputs: ReferenceImages) -> dict:
        extras = super().extras(request, inputs)
        extras["blended_images"] = len(request.images)
        if request.image_weights:
            extras["blend_weights"] = list(request.image_weights)
        return extras

    def image_prompts(self, request: BlendRequest, inputs: tuple[Image.Image, ...]) -> list[ImagePrompt]:
        images = tuple(
            check_image(image, f"image {number}") for number, image in enumerate(request.images, 1)
        )
        blend = ImagePrompt("blend", images, weights=request.image_weights, scale=BLEND_SCALE)
        return [blend, *super().image_prompts(request, inputs)]
