"""Zoom out and pan: extend the canvas and paint the new border, keeping every original pixel.

The new border starts from a blurred stretch of the image (so the colours continue), the mask covers the
border plus a strip of the original for the model to blend into, and the original is put back exactly at
the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from PIL import Image, ImageDraw, ImageFilter
from pydantic import ConfigDict, Field

from pipelines.common import IsCancelled, Progress, never_cancelled, no_progress
from pipelines.diffusion import DiffusionRequest, GeneratedImage, check_prompt_side, resolve_run
from pipelines.images import check_image
from pipelines.inpaint import InpaintPipeline
from studio.errors import InvalidRequest
from studio.model_cache import ModelCache
from studio.models import ModelSource
from studio.presets import Presets

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


class OutpaintRequest(DiffusionRequest):
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
    # Keep the original out of the mask, but for a strip along each edge that meets new canvas.
    inset_left = overlap if left > 0 else 0
    inset_top = overlap if top > 0 else 0
    inset_right = overlap if right < canvas_size[0] else 0
    inset_bottom = overlap if bottom < canvas_size[1] else 0
    ImageDraw.Draw(mask).rectangle(
        (left + inset_left, top + inset_top, right - 1 - inset_right, bottom - 1 - inset_bottom), fill=0
    )
    return background, mask


class OutpaintPipeline:
    task = "outpaint"

    def __init__(self, cache: ModelCache, presets: Presets) -> None:
        self.presets = presets
        self.inpaint = InpaintPipeline(cache, presets)

    def check_inputs(self, request: OutpaintRequest) -> tuple[ModelSource, Image.Image]:
        image = check_image(request.image)
        canvas, _ = extended_canvas(image.size, request.direction, request.pan_amount)
        if max(canvas) > MAX_CANVAS_SIDE:
            raise InvalidRequest(
                f"Extending {image.width}×{image.height} this way makes a {canvas[0]}×{canvas[1]} canvas; "
                f"the limit is {MAX_CANVAS_SIDE} pixels on the longer side. Start from a smaller image."
            )
        return check_prompt_side(request, self.presets, prompt_required=False), image

    def __call__(
        self,
        request: OutpaintRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> list[GeneratedImage]:
        return list(self.generate(request, progress, is_cancelled))

    def generate(
        self,
        request: OutpaintRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> Iterator[GeneratedImage]:
        # 1. Check inputs and fill in the model preset's defaults
        source, image = self.check_inputs(request)
        run = resolve_run(request, source, self.presets)

        # 2. The larger canvas: the original on a blurred stretch of itself, the border masked
        canvas_size, offset = extended_canvas(image.size, request.direction, request.pan_amount)
        canvas, mask = outpaint_canvas(image, canvas_size, offset, request.overlap)

        # 3. Paint the border, then put every original pixel back exactly
        for generated in self.inpaint.repaint(
            request, run, canvas, mask, progress, is_cancelled,
            strength=1.0, mask_blur=request.overlap // 2, task=self.task, outpaint=request.direction,
        ):  # fmt: skip
            result = generated.image.copy()
            result.paste(image, offset)
            yield GeneratedImage(result, generated.parameters)
