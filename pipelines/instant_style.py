"""Instant neural style: a photo restyled in a second, offline and on CPU, by networks that ship in a package.

- Built-in styles: 26 styles of one network, up to three mixed by weight. The network takes the whole
  picture at the working size, so its statistics (and the look) are those of the whole image.
- Any painting as the style: a style vector predicted from the painting drives a 384×384 network, run over
  overlapping tiles of the working-size picture so large images keep their detail.

The result is always at the input's exact size: the networks work at `working_size` (longer side; bigger
means finer strokes) and Lanczos brings the result back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NamedTuple

import numpy as np
from PIL import Image
from pydantic import ConfigDict, Field

from pipelines.parts.common import GeneratedImage, IsCancelled, Progress, never_cancelled, no_progress
from pipelines.parts.images import check_image, resized, to_array, to_image
from pipelines.parts.recording import derived_parameters
from pipelines.parts.tiling import run_tiled, tile_grid
from pipelines.task import OneResultTask
from studio.core.cache import Lease
from studio.core.cache.kinds import NEURAL_STYLE
from studio.core.errors import InvalidRequest, RunCancelled
from studio.core.metadata import GenerationParameters
from studio.core.neural_style import (
    MULTISTYLE,
    NUM_STYLES,
    PREDICTOR,
    TRANSFORM_SIZE,
    TRANSFORMER,
    load_neural_styles,
    load_session,
    model_path,
    preview_file_name,
    style_vector,
    stylize,
    transform,
)
from studio.core.requests import Request
from studio.core.settings import DEFAULT_PRESETS_DIR

DEFAULT_STYLES_PATH = DEFAULT_PRESETS_DIR / "neural_styles.json"
PREVIEWS_FOLDER = "neural_style_previews"  # beside the styles file
MAX_MIXED_STYLES = 3
MAX_STYLE_IMAGE_SIDE = 4096  # only a 256-pixel square of it is read, so it may be larger than a photo
TILE_OVERLAP = 64  # 1024 pixels are exactly three 384-pixel tiles
# Extras this task writes; a source PNG's values under these keys are replaced, not mixed in.
STYLE_EXTRAS = (
    "mode",
    "neural_styles",
    "style_weights",
    "style_image",
    "style_strength",
    "preserve_colors",
    "working_size",
)


class InstantStyleRequest(Request):
    """A photo and the style to give it: built-in styles mixed by weight, or a painting."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None
    styles: tuple[str, ...] = Field((), max_length=MAX_MIXED_STYLES)  # names from presets/neural_styles.json
    style_weights: tuple[Annotated[float, Field(ge=0, le=1)], ...] = Field(
        (1.0,), max_length=MAX_MIXED_STYLES
    )
    style_image: Image.Image | None = None  # when given, its style is used and `styles` is ignored
    strength: float = Field(1.0, ge=0, le=1)  # 0 returns the photo itself
    preserve_colors: bool = False  # the stylized brightness with the photo's own colours
    working_size: int = Field(1024, ge=256, le=2048)  # longer side the networks see; bigger: finer strokes


class CheckedStyle(NamedTuple):
    image: Image.Image  # the photo, RGB
    weights: np.ndarray | None  # the 26 built-in weights summing to 1, or None for a painting
    style_image: Image.Image | None  # the painting, RGB


def keep_colors(stylized: Image.Image, original: Image.Image) -> Image.Image:
    """The stylized brightness (Y) with the original's colour (Cb, Cr)."""
    luminance = stylized.convert("YCbCr").getchannel("Y")
    _, blue, red = original.convert("YCbCr").split()
    return Image.merge("YCbCr", (luminance, blue, red)).convert("RGB")


def network_size(size: tuple[int, int], working_size: int) -> tuple[int, int]:
    """The picture's size with its longer side at `working_size`; at least 8 pixels a side for the network."""
    scale = working_size / max(size)
    return max(8, round(size[0] * scale)), max(8, round(size[1] * scale))


class InstantStylePipeline(OneResultTask):
    task = "style_transfer"
    request_type = InstantStyleRequest
    backends = ("onnxruntime",)
    styles_path = DEFAULT_STYLES_PATH  # the package's styles, with their previews beside them

    def setup(self) -> None:
        self.styles = load_neural_styles(self.styles_path)  # validated now, so a bad file fails at start-up
        self._index = {style.name: index for index, style in enumerate(self.styles)}

    def style_names(self) -> list[str]:
        return [style.name for style in self.styles]

    def preview_path(self, name: str) -> Path:
        """The 96×96 thumbnail of a built-in style (made by scripts/make_style_previews.py)."""
        self._check_names([name])
        return self.styles_path.parent / PREVIEWS_FOLDER / preview_file_name(name)

    def _session(self, lease: Lease, name: str) -> Any:
        """The onnxruntime session of one of the package's networks, loaded once into the shared cache."""
        path = model_path(name)
        device = lease.device_config.device
        return lease.model(
            NEURAL_STYLE, str(path), lambda: load_session(path, device), nbytes=path.stat().st_size
        )

    # -- checks ------------------------------------------------------------------------------------------

    def _check_names(self, names: tuple[str, ...] | list[str]) -> None:
        unknown = [name for name in names if name not in self._index]
        if unknown:
            valid = ", ".join(self.style_names())
            raise InvalidRequest(f"Unknown style {', '.join(map(repr, unknown))}. Choose from: {valid}.")

    def check_inputs(self, request: InstantStyleRequest) -> CheckedStyle:
        image = check_image(request.image)
        if request.style_image is not None:
            painting = check_image(request.style_image, "style image", max_side=MAX_STYLE_IMAGE_SIDE)
            return CheckedStyle(image, None, painting)
        if not request.styles:
            raise InvalidRequest("Pick a style (or give a painting as the style image).")
        self._check_names(request.styles)
        if len(request.style_weights) != len(request.styles):
            raise InvalidRequest(
                f"Give one weight per style: {len(request.styles)} styles but "
                f"{len(request.style_weights)} weights."
            )
        if sum(request.style_weights) <= 0:
            raise InvalidRequest("The style weights sum to zero: give at least one style a weight above 0.")
        weights = np.zeros(NUM_STYLES, dtype=np.float32)
        for name, weight in zip(request.styles, request.style_weights, strict=True):
            weights[self._index[name]] += weight
        return CheckedStyle(image, weights / weights.sum(), None)

    # -- running -----------------------------------------------------------------------------------------

    def __call__(
        self,
        request: InstantStyleRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> GeneratedImage:
        # 1. Check inputs: the photo, and the style (a mix of built-in styles or a painting)
        image, weights, painting = self.check_inputs(request)
        if is_cancelled():
            raise RunCancelled()

        # 2. Strength 0 asks for no change: the photo comes back untouched, with no network run at all.
        if request.strength == 0:
            progress(1, 1)
            return GeneratedImage(image, self._parameters(request, image, painting))

        # 3. The photo at the working size, stylized by the built-in network or by a painting's style
        work = to_array(resized(image, network_size(image.size, request.working_size)))
        with self.cache.lease() as lease, self.cache.gpu_lock:
            if painting is not None:
                stylized = self._paint_like(
                    lease, work, image, painting, request.strength, progress, is_cancelled
                )
            else:
                stylized = stylize(self._session(lease, MULTISTYLE), work, weights)
                progress(1, 1)

        # 4. Back to the photo's exact size; its own colours if asked; mixed with it by strength
        result = resized(to_image(stylized), image.size)
        if request.preserve_colors:
            result = keep_colors(result, image)
        if request.strength < 1:
            result = to_image(request.strength * to_array(result) + (1 - request.strength) * to_array(image))
        return GeneratedImage(result, self._parameters(request, image, painting))

    def _paint_like(
        self,
        lease: Lease,
        work: np.ndarray,
        image: Image.Image,
        painting: Image.Image,
        strength: float,
        progress: Progress,
        is_cancelled: IsCancelled,
    ) -> np.ndarray:
        """`work` in the painting's style, over overlapping 384-pixel tiles with blended seams."""
        height, width = work.shape[:2]
        vectors = 1 if strength == 1 else 2
        total = vectors + len(tile_grid(width, height, TRANSFORM_SIZE, TILE_OVERLAP))
        predictor = self._session(lease, PREDICTOR)
        vector = style_vector(predictor, to_array(painting))
        progress(1, total)
        if strength < 1:
            # As the networks' authors do: a style part way from the photo's own toward the painting's.
            if is_cancelled():
                raise RunCancelled()
            vector = strength * vector + (1 - strength) * style_vector(predictor, to_array(image))
            progress(2, total)
        transformer = self._session(lease, TRANSFORMER)
        return run_tiled(
            work,
            lambda tile: transform(transformer, tile, vector),
            scale=1,
            tile=TRANSFORM_SIZE,
            overlap=TILE_OVERLAP,
            progress=progress,
            is_cancelled=is_cancelled,
            progress_offset=vectors,
            progress_total=total,
        )

    def _parameters(
        self, request: InstantStyleRequest, image: Image.Image, painting: Image.Image | None
    ) -> GenerationParameters:
        """What was done, on top of the source PNG's own parameters (prompt, seed, model) when it has any."""
        extras: dict[str, Any] = {"mode": "instant"}
        if painting is not None:
            extras["style_image"] = f"{painting.width}x{painting.height}"
        else:
            extras["neural_styles"] = list(request.styles)
            extras["style_weights"] = list(request.style_weights)
        extras.update(
            style_strength=request.strength,
            preserve_colors=request.preserve_colors,
            working_size=request.working_size,
        )
        return derived_parameters(self.task, request.image, image.size, extras, owned=STYLE_EXTRAS)
