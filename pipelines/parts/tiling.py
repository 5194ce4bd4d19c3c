"""Tiles with overlap and feathered blending, so memory follows the tile size and seams do not show.

A large image is cut into overlapping tiles; each tile's result is weighted by a ramp that falls off across
the overlap (never at the image's own edges) and the weighted results are summed and normalised. Only one
tile is ever on the model at a time; the output canvas is the one thing that grows with the image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipelines.parts.common import IsCancelled, Progress
from studio.core.errors import RunCancelled


@dataclass(frozen=True)
class Tile:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]  # the last tile ends at the edge exactly


def tile_grid(width: int, height: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles of at most `tile`×`tile` covering the image, neighbours sharing at least `overlap` pixels."""
    if not 0 <= overlap < tile:
        raise ValueError("overlap must be smaller than the tile")
    return [
        Tile(left, top, min(left + tile, width), min(top + tile, height))
        for top in _starts(height, tile, overlap)
        for left in _starts(width, tile, overlap)
    ]


def _ramp(length: int, fade_start: int, fade_end: int) -> np.ndarray:
    """Weights along one side: rising over `fade_start` pixels, falling over the last `fade_end`."""
    weights = np.ones(length, dtype=np.float32)
    if fade_start:
        weights[:fade_start] = (np.arange(fade_start, dtype=np.float32) + 0.5) / fade_start
    if fade_end:
        weights[length - fade_end :] = np.minimum(
            weights[length - fade_end :], (np.arange(fade_end, dtype=np.float32)[::-1] + 0.5) / fade_end
        )
    return weights


def tile_weights(tile: Tile, width: int, height: int, overlap: int, scale: int = 1) -> np.ndarray:
    """The (h×scale, w×scale) blend weights of a tile; they fade only where another tile overlaps it."""
    fade = overlap * scale
    horizontal = _ramp(tile.width * scale, fade if tile.left > 0 else 0, fade if tile.right < width else 0)
    vertical = _ramp(tile.height * scale, fade if tile.top > 0 else 0, fade if tile.bottom < height else 0)
    return vertical[:, None] * horizontal[None, :]


class TileCanvas:
    """Sums weighted tile results into an (H, W, C) float32 canvas and normalises at the end."""

    def __init__(self, width: int, height: int, channels: int = 3) -> None:
        self.sum = np.zeros((height, width, channels), dtype=np.float32)
        self.weight = np.zeros((height, width, 1), dtype=np.float32)

    def add(self, left: int, top: int, pixels: np.ndarray, weights: np.ndarray) -> None:
        height, width = weights.shape
        self.sum[top : top + height, left : left + width] += pixels * weights[..., None]
        self.weight[top : top + height, left : left + width] += weights[..., None]

    def result(self) -> np.ndarray:
        return self.sum / np.maximum(self.weight, 1e-8)


def run_tiled(
    image: np.ndarray,
    process: Callable[[np.ndarray], np.ndarray],
    *,
    scale: int,
    tile: int,
    overlap: int,
    progress: Progress,
    is_cancelled: IsCancelled,
    progress_offset: int = 0,
    progress_total: int | None = None,
) -> np.ndarray:
    """Apply `process` (an (h, w, 3) float image to an (h×scale, w×scale, 3) one) tile by tile.

    Reports one progress step per tile and checks Stop before every tile.
    """
    height, width = image.shape[:2]
    tiles = tile_grid(width, height, tile, overlap)
    total = progress_total or len(tiles)
    canvas = TileCanvas(width * scale, height * scale, image.shape[2])
    for index, box in enumerate(tiles):
        if is_cancelled():
            raise RunCancelled()
        result = process(image[box.top : box.bottom, box.left : box.right])
        expected = (box.height * scale, box.width * scale)
        if result.shape[:2] != expected:
            raise ValueError(f"a tile came back {result.shape[:2]}, expected {expected}")
        canvas.add(
            box.left * scale, box.top * scale, result, tile_weights(box, width, height, overlap, scale)
        )
        progress(progress_offset + index + 1, total)
    return canvas.result()
