import numpy as np
import pytest

from pipelines.parts.tiling import run_tiled, tile_grid, tile_weights
from studio.core.errors import RunCancelled


def no_progress(step, total):
    return None


@pytest.mark.parametrize(
    ("width", "height", "tile", "overlap"), [(100, 70, 32, 8), (64, 64, 64, 8), (33, 200, 16, 4)]
)
def test_tiles_cover_the_image_and_overlap_their_neighbours(width, height, tile, overlap):
    tiles = tile_grid(width, height, tile, overlap)
    covered = np.zeros((height, width), int)
    for box in tiles:
        assert box.width <= tile and box.height <= tile
        covered[box.top : box.bottom, box.left : box.right] += 1
    assert covered.min() >= 1
    lefts = sorted({b.left for b in tiles})
    rights = sorted({b.right for b in tiles})
    assert all(right - left >= overlap for left, right in zip(lefts[1:], rights[:-1], strict=False))


def test_weights_fade_only_where_tiles_meet():
    tiles = tile_grid(100, 70, 32, 8)
    first = tile_weights(tiles[0], 100, 70, 8)
    assert first[0, 0] == 1.0, "no fade at the image's own edge"
    assert first[16, -1] < 0.1 and first[-1, 16] < 0.1, "fades where the next tile takes over"


def test_identity_and_pixel_upscale_are_reproduced_exactly():
    image = np.random.default_rng(0).random((70, 100, 3), dtype=np.float32)
    same = run_tiled(
        image, lambda t: t, scale=1, tile=32, overlap=8, progress=no_progress, is_cancelled=lambda: False
    )
    assert np.abs(same - image).max() < 1e-6

    def upscale(t):
        return np.repeat(np.repeat(t, 3, 0), 3, 1)

    big = run_tiled(
        image, upscale, scale=3, tile=32, overlap=8, progress=no_progress, is_cancelled=lambda: False
    )
    assert np.abs(big - upscale(image)).max() < 1e-6


def test_a_local_filter_agrees_with_the_untiled_result_away_from_tile_edges():
    image = np.random.default_rng(1).random((64, 96, 3), dtype=np.float32)

    def blur(t):  # a 3x3 box filter: each output pixel sees one pixel of context on each side
        padded = np.pad(t, ((1, 1), (1, 1), (0, 0)), mode="edge")
        return (
            sum(padded[dy : dy + t.shape[0], dx : dx + t.shape[1]] for dy in range(3) for dx in range(3)) / 9
        )

    tiled = run_tiled(
        image, blur, scale=1, tile=32, overlap=8, progress=no_progress, is_cancelled=lambda: False
    )
    difference = np.abs(tiled - blur(image))
    # Tolerance: 1e-5 away from the one-pixel rim of each tile; where tiles meet, blending averages the
    # rim's small error down (under 0.05 on values in [0, 1]).
    assert difference.max() < 0.05
    interior = np.ones(difference.shape[:2], bool)
    for box in tile_grid(96, 64, 32, 8):
        for x in (box.left, box.right - 1):
            if 0 < x < 95:
                interior[:, x] = False
        for y in (box.top, box.bottom - 1):
            if 0 < y < 63:
                interior[y, :] = False
    assert difference[interior].max() < 1e-5


def test_stop_is_checked_before_every_tile_and_progress_counts_tiles():
    calls, reports = [], []
    image = np.zeros((64, 64, 3), np.float32)

    def process(t):
        calls.append(t.shape)
        return t

    with pytest.raises(RunCancelled):
        run_tiled(
            image,
            process,
            scale=1,
            tile=32,
            overlap=8,
            progress=lambda s, n: reports.append((s, n)),
            is_cancelled=lambda: len(calls) == 2,
        )
    assert len(calls) == 2 and reports == [(1, 9), (2, 9)]
    assert all(shape[0] <= 32 and shape[1] <= 32 for shape in calls), "the model never sees more than a tile"
