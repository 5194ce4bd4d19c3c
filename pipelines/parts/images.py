"""Checking input images and fitting them to the sizes a model can denoise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from studio.core.errors import InvalidRequest
from studio.core.requests import MAX_INPUT_SIDE


@dataclass(frozen=True)
class InputImage:
    """A task's checked input image (RGB), what strength 0 hands back unchanged."""

    image: Image.Image


def check_image(image: object, what: str = "image", max_side: int = MAX_INPUT_SIDE) -> Image.Image:
    """An RGB copy of `image` as it is shown (upright, an animation's first frame), or a clear error
    saying what is wrong with it."""
    if image is None:
        raise InvalidRequest(f"Add an {what} first (upload, paste, or send one from a result).")
    if not isinstance(image, Image.Image):
        raise InvalidRequest(f"The {what} could not be read as a picture.")
    # The size comes from the file's header: a picture too large is refused before it is decoded.
    width, height = image.size
    if width < 8 or height < 8:
        raise InvalidRequest(f"The {what} is {width}×{height}: at least 8×8 pixels are needed.")
    if max(width, height) > max_side:
        raise InvalidRequest(
            f"The {what} is {width}×{height}; the limit is {max_side} pixels on the longer side. "
            "Make it smaller first (the Upscale tab can enlarge the result afterwards)."
        )
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)
        # Phones store a photo sideways and say how to turn it in its EXIF Orientation tag.
        return _as_rgb(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, EOFError) as error:  # what PIL raises for damaged or cut-short files
        raise InvalidRequest(
            f"The {what} could not be read: the file is damaged or cut short ({error})."
        ) from error
    except ValueError as error:  # a colour mode PIL cannot convert
        raise InvalidRequest(
            f"The {what} is in the {image.mode} colour mode, which cannot be read as RGB."
        ) from error


def _as_rgb(image: Image.Image) -> Image.Image:
    if image.mode in {"I;16", "I;16L", "I;16B", "I;16N", "I"}:
        # 16-bit greyscale, scaled to 8 bits: a plain conversion clips every value above 255 to white.
        levels = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(levels + 0.5, 0, 255).astype(np.uint8))
    if "A" in image.getbands() or "transparency" in image.info:
        # Transparent areas (an alpha channel, or a palette's or PNG's transparent colour) become white
        # rather than whatever colour the hidden pixels hold.
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", image.size, "white")
        flattened.paste(rgba, mask=rgba.getchannel("A"))
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
