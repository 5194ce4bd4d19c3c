"""Checking input images and fitting them to the sizes a model can denoise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from studio.core.errors import InvalidRequest

MAX_INPUT_SIDE = 2048  # longer side of an input image, in pixels; larger inputs are refused, not shrunk


@dataclass(frozen=True)
class InputImage:
    """A task's checked input image (RGB), what strength 0 hands back unchanged."""

    image: Image.Image


def check_image(image: object, what: str = "image", max_side: int = MAX_INPUT_SIDE) -> Image.Image:
    """An RGB copy of `image`, or a clear error saying what is wrong with it."""
    if image is None:
        raise InvalidRequest(f"Add an {what} first (upload, paste, or send one from a result).")
    if not isinstance(image, Image.Image):
        raise InvalidRequest(f"The {what} could not be read as a picture.")
    width, height = image.size
    if width < 8 or height < 8:
        raise InvalidRequest(f"The {what} is {width}×{height}: at least 8×8 pixels are needed.")
    if max(width, height) > max_side:
        raise InvalidRequest(
            f"The {what} is {width}×{height}; the limit is {max_side} pixels on the longer side. "
            "Make it smaller first (the Upscale tab can enlarge the result afterwards)."
        )
    if image.mode == "RGBA":
        # Transparent areas become white rather than whatever colour the hidden pixels hold.
        flattened = Image.new("RGB", image.size, "white")
        flattened.paste(image, mask=image.getchannel("A"))
        return flattened
    return image.convert("RGB")


def working_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """The nearest size whose sides are multiples of `multiple`, as the model needs."""
    return tuple(max(multiple, round(side / multiple) * multiple) for side in size)  # type: ignore[return-value]


def resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def to_array(image: Image.Image) -> np.ndarray:
    """RGB pixels as float32 in 0..1, the form the tiled networks work on."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def to_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8))


def check_mask(mask: object, image_size: tuple[int, int]) -> Image.Image:
    """A greyscale mask (white: repaint) matching the image, or a clear error."""
    if mask is None:
        raise InvalidRequest("Paint over the part of the image to repaint first.")
    if not isinstance(mask, Image.Image):
        raise InvalidRequest("The mask could not be read as a picture.")
    if mask.size != image_size:
        raise InvalidRequest(
            f"The mask is {mask.size[0]}×{mask.size[1]} but the image is {image_size[0]}×{image_size[1]}: "
            "paint the mask on this image."
        )
    mask = mask.getchannel("A") if mask.mode in {"RGBA", "LA"} else mask.convert("L")
    if mask.getbbox() is None:
        raise InvalidRequest("The mask is empty: paint over the part of the image to repaint.")
    return mask


def blend_outside_mask(
    original: Image.Image, generated: Image.Image, mask: Image.Image, blur: int
) -> Image.Image:
    """Generated pixels where the mask is painted, original pixels elsewhere, with a soft seam.

    The mask is grown by `blur` before softening, so the painted area is repainted in full, and pixels
    farther than 3×`blur` from it keep the original's values exactly.
    """
    generated = resized(generated, original.size)
    if blur > 0:
        mask = mask.filter(ImageFilter.MaxFilter(2 * blur + 1)).filter(ImageFilter.GaussianBlur(blur / 2))
    return Image.composite(generated, original, mask)
