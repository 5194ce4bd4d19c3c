"""Zoom out and pan: extend the canvas and paint the new border, keeping every original pixel.

The new border starts from a blurred stretch of the image (so the colours continue), the mask covers the
border plus a strip of the original for the model to blend into, and the original is put back exactly at
the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageDraw, ImageFilter
from pydantic import ConfigDict, Field

from pipelines.diffusion import GenerationRequest
from pipelines.inpaint import InpaintPipeline, MaskedImage
from pipelines.parts.images import check_image
from studio.core.errors import InvalidRequest

Direction = Literal["zoom_out_1.5", "zoom_out_2", "pan_left", "pan_right", "pan_up", "pan_down"]
DIRECTION_LABELS: dict[str, str] = {
    "zoom_out_1.5": "Zoom out 1.5×",
    "zoom_out_2": "Zoom out 2×",
    "pan_left": "⬅ Pan left",
    "pan_right": "Pan right ➡",
    "pan_up": "⬆ Pan up",
    "pan_down": "Pan down ⬇",
}
MAX_CANVAS_SIDE = 3072  # denoising a larger canvas takes too long and too much memory


class OutpaintRequest(GenerationRequest):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None
    direction: Direction = "zoom_out_1.5"
    pan_amount: float = Field(0.5, ge=0.1, le=1)  # for pans: the new strip, as a fraction of the side
    overlap: int = Field(16, ge=0, le=128)  # pixels of the original the model may repaint to blend in


def extended_canvas(
    size: tuple[int, int], direction: str, pan_amount: float
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The new canvas size and where the original's top-left corner goes on it."""
    width, height = size
    if direction.startswith("zoom_out_"):
        factor = float(direction.removeprefix("zoom_out_"))
        canvas = (round(width * factor), round(height * factor))
        return canvas, ((canvas[0] - width) // 2, (canvas[1] - height) // 2)
    extra_x, extra_y = round(width * pan_amount), round(height * pan_amount)
    return {
        "pan_left": ((width + extra_x, height), (extra_x, 0)),
        "pan_right": ((width + extra_x, height), (0, 0)),
        "pan_up": ((width, height + extra_y), (0, extra_y)),
        "pan_down": ((width, height + extra_y), (0, 0)),
    }[direction]


def outpaint_canvas(
    image: Image.Image, canvas_size: tuple[int, int], offset: tuple[int, int], overlap: int
) -> tuple[Image.Image, Image.Image]:
    """The starting canvas (original over a blurred stretch of itself) and the mask of what to paint."""
    background = image.resize(canvas_size, Image.Resampling.BILINEAR).filter(
        ImageFilter.GaussianBlur(max(canvas_size) / 16)
    )
    background.paste(image, offset)
    mask = Image.new("L", canvas_size, 255)
    left, top = offset
    right, bottom = left + image.width, top + image.height
    # Keep the original out of the mask, but for a strip along each edge that meets new canvas; a small
    # image keeps at least its middle half whatever overlap is asked.
    overlap = min(overlap, min(image.size) // 4)
    inset_left = overlap if left > 0 else 0
    inset_top = overlap if top > 0 else 0
    inset_right = overlap if right < canvas_size[0] else 0
    inset_bottom = overlap if bottom < canvas_size[1] else 0
    ImageDraw.Draw(mask).rectangle(
        (left + inset_left, top + inset_top, right - 1 - inset_right, bottom - 1 - inset_bottom), fill=0
    )
    return background, mask


@dataclass(frozen=True)
class ExtendedCanvas(MaskedImage):
    original: Image.Image
    offset: tuple[int, int]  # where the original's top-left corner is on the canvas


class OutpaintPipeline(InpaintPipeline):
    """Inpainting of the new border, on a canvas built from the input, with the original put back."""

    task = "outpaint"
    request_type = OutpaintRequest

    def check_inputs(self, request: OutpaintRequest) -> ExtendedCanvas:
        image = check_image(request.image)
        canvas_size, offset = extended_canvas(image.size, request.direction, request.pan_amount)
        if max(canvas_size) > MAX_CANVAS_SIDE:
            raise InvalidRequest(
                f"Extending {image.width}×{image.height} this way makes a "
                f"{canvas_size[0]}×{canvas_size[1]} canvas; the limit is {MAX_CANVAS_SIDE} pixels on the "
                "longer side. Start from a smaller image."
            )
        # The larger canvas: the original on a blurred stretch of itself, the border masked
        canvas, mask = outpaint_canvas(image, canvas_size, offset, request.overlap)
        return ExtendedCanvas(canvas, mask, 1.0, request.overlap // 2, image, offset)

    def extras(self, request: OutpaintRequest, inputs: ExtendedCanvas) -> dict[str, Any]:
        return {**super().extras(request, inputs), "outpaint": request.direction}

    def finish(self, image: Image.Image, inputs: ExtendedCanvas) -> Image.Image:
        result = super().finish(image, inputs)
        result.paste(inputs.original, inputs.offset)  # every original pixel back exactly
        return result
