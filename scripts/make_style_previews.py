"""Make the built-in styles' thumbnails and the contact sheet that shows them all.

    python scripts/make_style_previews.py

Runs every style of `presets/neural_styles.json` on `presets/samples/sample.jpg` through the real pipeline
on CPU, and writes one 96×96 PNG per style into `presets/neural_style_previews/` (named as
`InstantStylePipeline.preview_path` expects) and the labelled sheet `docs/neural_styles.png`. The sample is
scikit-image's `chelsea` photograph (CC0, Stefan van der Walt); it is written from scikit-image when missing.
Run it again after renaming or reordering styles.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from pipelines.instant_style import PREVIEWS_FOLDER, InstantStylePipeline, InstantStyleRequest  # noqa: E402
from studio.core.cache import ModelCache  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.presets import load_presets  # noqa: E402
from studio.core.requests import parse_request  # noqa: E402
from studio.core.settings import DEFAULT_PRESETS_DIR  # noqa: E402

SAMPLE = ROOT / "presets" / "samples" / "sample.jpg"
SHEET = ROOT / "docs" / "neural_styles.png"
PREVIEW_SIZE = 96
PREVIEW_WORKING_SIZE = 256  # large strokes, so a style still reads at 96 pixels
SHEET_WORKING_SIZE = 512
SHEET_COLUMNS = 6
SHEET_TILE_WIDTH = 300
LABEL_HEIGHT = 26
GAP = 8


def sample() -> Image.Image:
    if not SAMPLE.is_file():
        import skimage.data

        SAMPLE.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(skimage.data.chelsea()).save(SAMPLE, quality=92)
    with Image.open(SAMPLE) as image:
        return image.convert("RGB")


def centre_square(image: Image.Image) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def styled(pipeline: InstantStylePipeline, image: Image.Image, name: str, working_size: int) -> Image.Image:
    request = {"image": image, "styles": (name,), "working_size": working_size}
    return pipeline(parse_request(InstantStyleRequest, request)).image


def contact_sheet(tiles: list[tuple[str, Image.Image]]) -> Image.Image:
    """The tiles in a grid, each with its label above it."""
    width, height = tiles[0][1].size
    rows = -(-len(tiles) // SHEET_COLUMNS)
    sheet = Image.new(
        "RGB",
        (GAP + SHEET_COLUMNS * (width + GAP), GAP + rows * (LABEL_HEIGHT + height + GAP)),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=17)
    for index, (label, tile) in enumerate(tiles):
        row, column = divmod(index, SHEET_COLUMNS)
        left, top = GAP + column * (width + GAP), GAP + row * (LABEL_HEIGHT + height + GAP)
        draw.text((left + 2, top + 3), label, fill="black", font=font)
        sheet.paste(tile, (left, top + LABEL_HEIGHT))
    return sheet


def main() -> None:
    presets = load_presets(DEFAULT_PRESETS_DIR)
    pipeline = InstantStylePipeline(ModelCache(resolve_device("cpu"), offline=True), presets)
    photo = sample()
    square = centre_square(photo)
    tile_size = (SHEET_TILE_WIDTH, round(SHEET_TILE_WIDTH * photo.height / photo.width))
    (pipeline.styles_path.parent / PREVIEWS_FOLDER).mkdir(exist_ok=True)
    tiles = [("Original", photo.resize(tile_size, Image.Resampling.LANCZOS))]
    for index, name in enumerate(pipeline.style_names()):
        preview = styled(pipeline, square, name, PREVIEW_WORKING_SIZE)
        preview.resize((PREVIEW_SIZE, PREVIEW_SIZE), Image.Resampling.LANCZOS).save(
            pipeline.preview_path(name)
        )
        tile = styled(pipeline, photo, name, SHEET_WORKING_SIZE).resize(tile_size, Image.Resampling.LANCZOS)
        tiles.append((f"{index}  {name}", tile))
    SHEET.parent.mkdir(exist_ok=True)
    # A 256-colour palette: a third of the size, and the dithering does not show at this scale.
    sheet = contact_sheet(tiles).quantize(256, dither=Image.Dither.FLOYDSTEINBERG)
    sheet.save(SHEET, optimize=True)
    print(f"wrote {len(tiles) - 1} previews and {SHEET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
