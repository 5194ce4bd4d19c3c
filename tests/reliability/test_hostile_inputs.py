"""Hostile inputs over the API: damaged and unusual pictures, huge and odd prompts, wrong types.

Each one is either handled (what the pipeline received is checked by its pixels: Image to Image at
strength 0 hands back the checked input unchanged) or refused with a message saying what is wrong, and
the studio keeps serving.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio.data_classes import ImageData
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from pipelines.parts.images import check_image
from studio.core.errors import InvalidRequest
from studio.core.metadata import read_parameters

pytestmark = pytest.mark.api

WIDTH, HEIGHT = 64, 48
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def still_serving(client: Client) -> None:
    images, parameters = client.predict(prompt="a plain request", steps=1, api_name="/txt2img")
    assert len(images) == 1 and parameters[0]["user_prompt"] == "a plain request"


def received(client: Client, path: Path) -> np.ndarray:
    """The picture the pipeline worked on, as Image to Image at strength 0 hands it back."""
    images, _ = client.predict(image=handle_file(str(path)), strength=0, api_name="/img2img")
    with Image.open(images[0]["image"]) as result:
        assert result.mode == "RGB"
        return np.asarray(result)


def filled(*boxes: tuple[tuple[int, int, int, int], tuple[int, int, int]]) -> np.ndarray:
    """An RGB array (rows, columns, 3), blue, with each (left, top, right, bottom) box painted."""
    array = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    array[:] = BLUE
    for (left, top, right, bottom), colour in boxes:
        array[top:bottom, left:right] = colour
    return array


def gradient() -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, for what PIL does not write (48-bit RGB) or should refuse (a bomb)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def bomb(path: Path, width: int, height: int) -> Path:
    """69 bytes that declare `width`×`height` RGB pixels."""
    path.write_bytes(raw_png(width, height, 8, 2, b"\0" * 64))
    return path


# Each picture: how to write it, and the RGB pixels the studio must work on.


def cmyk_jpeg(path: Path) -> np.ndarray:
    Image.fromarray(gradient()).convert("CMYK").save(path, quality=95)
    return gradient()


def grey_16_bit(path: Path) -> np.ndarray:
    levels = np.tile(np.arange(WIDTH, dtype=np.uint16) * 1000, (HEIGHT, 1))  # 0 to 63000 of 65535
    image = Image.fromarray(levels)
    assert image.mode == "I;16"
    image.save(path)
    grey = np.round(levels / 257).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def rgb_48_bit(path: Path) -> np.ndarray:
    samples = gradient().astype(">u2") * 257
    path.write_bytes(raw_png(WIDTH, HEIGHT, 16, 2, b"".join(b"\0" + row.tobytes() for row in samples)))
    return gradient()


def palette_with_transparency(path: Path) -> np.ndarray:
    image = Image.new("P", (WIDTH, HEIGHT), 0)
    image.putpalette([*RED, *BLUE])  # the transparent entry 0 holds red
    image.paste(1, (32, 0, WIDTH, HEIGHT))
    image.save(path, transparency=0)
    return filled(((0, 0, 32, HEIGHT), WHITE))


def animated(path: Path) -> np.ndarray:
    frames = [Image.new("RGB", (WIDTH, HEIGHT), colour) for colour in (RED, GREEN, BLUE)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    return filled(((0, 0, WIDTH, HEIGHT), RED))


def animated_gif_with_transparency(path: Path) -> np.ndarray:
    frames = [Image.new("P", (WIDTH, HEIGHT), 0) for _ in range(2)]
    for frame in frames:
        frame.putpalette([0, 0, 0, *GREEN])
    frames[0].paste(1, (32, 0, WIDTH, HEIGHT))
    frames[1].paste(1, (0, 0, WIDTH, HEIGHT))
    frames[0].save(path, save_all=True, append_images=frames[1:], transparency=0, duration=100, loop=0)
    return filled(((0, 0, 32, HEIGHT), WHITE), ((32, 0, WIDTH, HEIGHT), GREEN))


# Stored as the sensor saw it: a red band on the left, a green band on the top.
STORED = filled(((0, 0, 16, HEIGHT), RED), ((0, 0, WIDTH, 12), GREEN))
# How each EXIF Orientation is shown: 3 turned half round, 6 a quarter clockwise, 8 a quarter anticlockwise.
SHOWN = {3: np.rot90(STORED, 2), 6: np.rot90(STORED, -1), 8: np.rot90(STORED, 1)}


def phone_photo(orientation: int, suffix: str):
    def write(path: Path) -> np.ndarray:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options = {".jpg": {"quality": 95, "subsampling": 0}, ".webp": {"lossless": True}}.get(suffix, {})
        Image.fromarray(STORED).save(path, exif=exif, **options)
        return SHOWN[orientation]

    return write


PICTURES = {
    "cmyk.jpg": cmyk_jpeg,
    "grey-16-bit.png": grey_16_bit,
    "rgb-48-bit.png": rgb_48_bit,
    "palette-transparency.png": palette_with_transparency,
    "animated.gif": animated,
    "animated.webp": animated,
    "animated-transparency.gif": animated_gif_with_transparency,
    "phone-6.jpg": phone_photo(6, ".jpg"),
    "phone-3.jpg": phone_photo(3, ".jpg"),
    "phone-8.jpg": phone_photo(8, ".jpg"),
    "phone-6.png": phone_photo(6, ".png"),
    "phone-6.webp": phone_photo(6, ".webp"),
}


def assert_pixels(got: np.ndarray, expected: np.ndarray, lossy: bool) -> None:
    assert got.shape == expected.shape, (
        f"{got.shape[1]}×{got.shape[0]}, not {expected.shape[1]}×{expected.shape[0]}"
    )
    difference = np.abs(got.astype(int) - expected.astype(int))
    if lossy:  # JPEG: close, colour for colour
        assert difference.mean() < 3, difference.mean()
    else:
        assert difference.max() <= 1, difference.max()


@pytest.mark.parametrize("name", PICTURES)
def test_unusual_pictures_are_worked_on_as_they_are_shown(client, folder, name):
    """CMYK, 16-bit, transparent palettes, animations (their first frame) and phone photos turned by
    their EXIF Orientation: the pipeline gets upright RGB with white where the picture is transparent."""
    path = folder / name
    expected = PICTURES[name](path)
    assert_pixels(received(client, path), expected, lossy=name.endswith(".jpg"))


@pytest.mark.parametrize("name", PICTURES)
def test_a_style_image_is_read_the_same_way(running_app, folder, name):
    """The style image input hands the pipeline a picture (not a file); what `check_image` then makes of
    it is what the instant and diffusion style pipelines work on."""
    path = folder / f"style-{name}"
    expected = PICTURES[name](path)
    [component] = [
        block
        for block in running_app.demo.blocks.values()
        if getattr(block, "elem_id", None) == "style-style-image"
    ]
    picture = component.preprocess(ImageData(path=str(path), orig_name=name))
    assert_pixels(np.asarray(check_image(picture, "style image")), expected, lossy=name.endswith(".jpg"))


def test_a_phone_photo_is_upscaled_upright(client, folder):
    path = folder / "upscale-phone.png"
    phone_photo(6, ".png")(path)
    _, file, _ = client.predict(
        image=handle_file(str(path)), upscaler="Lanczos (no model)", target_width=96, api_name="/upscale"
    )
    with Image.open(file) as result:
        assert result.size == (96, 128)
        # twice as large, pixel for pixel; sampled away from the bands' edges, where Lanczos rings
        enlarged = np.asarray(result.convert("RGB"))[1::2, 1::2]
    for x, y in [(4, 4), (42, 4), (42, 60), (20, 30)]:
        assert np.abs(enlarged[y, x].astype(int) - SHOWN[6][y, x]).max() < 10, (x, y)


def inpainted_band(client: Client, path: Path, size: tuple[int, int], rows: tuple[int, int]) -> np.ndarray:
    """The RGB result of inpainting the picture at `path` (shown `size`) under a mask over `rows`."""
    mask = Image.new("RGBA", size, (0, 0, 0, 0))
    mask.paste((255, 255, 255, 255), (0, rows[0], size[0], rows[1]))
    mask_path = path.with_name(f"{path.stem}-mask.png")
    mask.save(mask_path)
    background, layer = handle_file(str(path)), handle_file(str(mask_path))
    images, _ = client.predict(
        image_and_mask={"background": background, "layers": [layer], "composite": None},
        prompt="a band",
        steps=1,
        mask_blur=0,
        api_name="/inpaint",
    )
    with Image.open(images[0]["image"]) as result:
        return np.asarray(result.convert("RGB"))


def test_a_phone_photo_is_inpainted_upright_with_a_mask_painted_on_what_is_shown(client, folder):
    path = folder / "inpaint-phone.png"
    shown = phone_photo(6, ".png")(path)
    kept = inpainted_band(client, path, (HEIGHT, WIDTH), (24, 40))  # shown 48 wide, 64 high
    assert kept.shape == shown.shape
    assert np.array_equal(kept[:24], shown[:24]) and np.array_equal(kept[40:], shown[40:])


def image_arguments(endpoint: str, path: Path, ok: Path) -> dict:
    """Arguments that hand `path` to `endpoint` as the picture it works on."""
    file = handle_file(str(path))
    return {
        "/img2img": {"image": file, "strength": 0},
        "/png_info": {"image": file},
        "/upscale": {"image": file, "upscaler": "Lanczos (no model)"},
        "/style_transfer": {
            "image": handle_file(str(ok)),
            "mode": "instant",
            "style_image": file,
            "style_source": "image",
        },
        "/inpaint": {"image_and_mask": {"background": file, "layers": [], "composite": None}},
    }[endpoint]


@pytest.fixture(scope="module")
def ok(folder) -> Path:
    path = folder / "ok.png"
    Image.fromarray(gradient()).save(path)
    return path


@pytest.mark.parametrize(
    ("endpoint", "size"),
    [
        ("/img2img", (20000, 20000)),  # beyond what PIL opens at all
        ("/img2img", (10000, 9000)),  # what PIL opens with a warning, then decodes whole
        ("/png_info", (10000, 9000)),
        ("/upscale", (10000, 9000)),
        ("/style_transfer", (10000, 9000)),
        ("/inpaint", (10000, 9000)),
    ],
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL's, as it reads the header
def test_decompression_bombs_are_refused_before_decoding(client, running_app, folder, ok, endpoint, size):
    path = bomb(folder / "bomb.png", *size)
    before = set(running_app.outputs.rglob("*.png"))
    with pytest.raises(AppError, match="too many pixels to open safely"):
        client.predict(**image_arguments(endpoint, path, ok), api_name=endpoint)
    assert set(running_app.outputs.rglob("*.png")) == before
    still_serving(client)


def cut_short(path: Path, format: str, where: str) -> Path:
    """A picture of noise, cut within its header or within its pixels."""
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format, quality=90)
    data = buffer.getvalue()
    path.write_bytes(data[:20] if where == "header" else data[: len(data) * 6 // 10])
    return path


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
@pytest.mark.parametrize("where", ["header", "pixels"])
@pytest.mark.parametrize("endpoint", ["/img2img", "/style_transfer"])
def test_truncated_pictures_are_refused_with_a_message(client, folder, ok, format, where, endpoint):
    path = cut_short(folder / f"cut.{format.lower()}", format, where)
    with pytest.raises(AppError, match=r"could not be read") as refused:
        client.predict(**image_arguments(endpoint, path, ok), api_name=endpoint)
    assert "Unexpected error" not in str(refused.value) and "Traceback" not in str(refused.value)
    still_serving(client)


def test_a_picture_handed_over_unread_and_found_cut_short_is_a_message(folder):
    """A pipeline may be handed a picture opened but not yet read (by a script): it is decoded there."""
    path = cut_short(folder / "unread.jpg", "JPEG", "pixels")
    message = "^The image could not be read: the file is damaged or cut short"
    with Image.open(path) as unread, pytest.raises(InvalidRequest, match=message):
        check_image(unread)


def test_a_colour_mode_pil_cannot_convert_is_a_message():
    with pytest.raises(InvalidRequest, match="^The image is in the La colour mode, which cannot be read"):
        check_image(Image.new("La", (16, 16)))


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_100_kb_prompt_is_refused_by_name(client, field):
    values = {"prompt": "x", field: "a lighthouse at dawn, " * 4700}  # 103 400 characters
    title = "Prompt" if field == "prompt" else "Negative prompt"
    with pytest.raises(AppError, match=f"^{title} is too long: at most 4000 characters.$"):
        client.predict(**values, steps=1, api_name="/txt2img")
    still_serving(client)


def test_a_prompt_longer_than_the_text_encoder_reads_runs_and_is_kept_whole(client):
    prompt = " ".join(f"word{index}" for index in range(500))  # 3 889 characters, far beyond 77 tokens
    images, parameters = client.predict(prompt=prompt, steps=1, api_name="/txt2img")
    assert parameters[0]["user_prompt"] == prompt
    assert read_parameters(images[0]["image"]).user_prompt == prompt


CONTROLS = "a cat\x00 in a\x1b[31m red\r\nhat, \u202eevil\u202c \u200b\ufeff\x7f\x07 done"


def test_control_characters_in_prompts_run_and_survive_the_png_metadata(client):
    images, made = client.predict(
        prompt=CONTROLS, negative_prompt="blur\x00ry\rdark", seed=8, steps=1, api_name="/txt2img"
    )
    assert made[0]["user_prompt"] == CONTROLS and made[0]["user_negative_prompt"] == "blur\x00ry\rdark"
    embedded = read_parameters(images[0]["image"])
    assert embedded.to_dict() == made[0], "our own chunk brings every character back"
    with Image.open(images[0]["image"]) as image:
        assert image.text["parameters"].startswith(CONTROLS + "\nNegative prompt: blur\x00ry\rdark\n")
    text, fields = client.predict(image=handle_file(images[0]["image"]), api_name="/png_info")
    assert fields == made[0] and text.startswith(CONTROLS)
    still_serving(client)


def test_a_prompt_that_is_not_unicode_is_a_message(client, running_app):
    """A lone surrogate: valid JSON, but no text; gradio_client cannot even send it, so plain HTTP does."""
    names = [
        parameter["parameter_name"]
        for parameter in client.view_api(print_info=False, return_format="dict")["named_endpoints"][
            "/txt2img"
        ]["parameters"]
    ]
    data = [None] * len(names)
    data[names.index("steps")] = 1
    body = json.dumps({"data": data}).replace("null", '"a cat \\ud800"', 1)
    call = f"{running_app.url}gradio_api/call/txt2img"
    event = httpx.post(call, content=body, headers={"content-type": "application/json"}).json()["event_id"]
    answer = httpx.get(f"{call}/{event}", timeout=60).text
    assert "event: error" in answer
    assert "Prompt: input should be a valid string, unable to parse raw data as a unicode string." in answer
    still_serving(client)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"prompt": "x", "steps": "many"},
            r"^Steps: input should be a valid integer, unable to parse string",
        ),
        ({"prompt": "x", "seed": [1, 2]}, r"^Seed: input should be a valid integer\.$"),
        ({"prompt": "x", "seed": {"value": 1}}, r"^Seed: input should be a valid integer\.$"),
        ({"prompt": None}, r"^Type a prompt first"),
        ({"prompt": "x", "styles": "Cinematic"}, r"^Styles: input should be a valid tuple\.$"),
        ({"prompt": "x", "num_images": 1.5}, r"^Images \(num_images\): input should be a valid integer"),
        ({"prompt": "x", "guidance_scale": "high"}, r"^Guidance scale: input should be a valid number"),
        ({"prompt": "x", "sampler": 5}, r"^Sampler: input should be a valid string\.$"),
        ({"prompt": "x", "model": ["a"]}, r"^Model: input should be a valid string\.$"),
    ],
)
def test_wrong_types_are_messages_naming_the_field(client, values, message):
    with pytest.raises(AppError, match=message):
        client.predict(**values, api_name="/txt2img")
    still_serving(client)


def test_a_number_sent_as_text_is_read_as_the_number(client):
    _, parameters = client.predict(prompt="x", seed="7", steps="1", api_name="/txt2img")
    assert (parameters[0]["seed"], parameters[0]["steps"]) == (7, 1)


@pytest.mark.parametrize(
    ("endpoint", "values", "message"),
    [
        ("/img2img", {"strength": "lots"}, r"^Strength: input should be a valid number"),
        ("/upscale", {"scale": "big"}, r"^Scale: input should be a valid number"),
        ("/outpaint", {"direction": 3}, r"^Direction must be one of 'zoom_out_1.5', "),
    ],
)
def test_wrong_types_on_image_endpoints_are_messages(client, ok, endpoint, values, message):
    with pytest.raises(AppError, match=message):
        client.predict(image=handle_file(str(ok)), **values, api_name=endpoint)


@pytest.mark.parametrize(
    ("endpoint", "values", "message"),
    [
        ("/img2img", {"image": None}, r"^Add an image first"),
        ("/upscale", {"image": None}, r"^Add an image first"),
        ("/style_transfer", {"image": None}, r"^Add an image first"),
        ("/vary", {"image": None}, r"^Add an image to vary first"),
        (
            "/inpaint",
            {"image_and_mask": {"background": None, "layers": [], "composite": None}},
            r"^Add an image first",
        ),
    ],
)
def test_a_missing_image_is_a_message(client, endpoint, values, message):
    with pytest.raises(AppError, match=message):
        client.predict(**values, api_name=endpoint)


@pytest.mark.parametrize(
    ("endpoint", "values", "label"),
    [
        ("/img2img", {"image": "photo.png", "strength": 0}, "Input image"),
        ("/img2img", {"image": 12, "strength": 0}, "Input image"),
        ("/upscale", {"image": "../../etc/passwd"}, None),
        ("/inpaint", {"image_and_mask": "photo.png"}, "Paint over what to repaint"),
        ("/inpaint", {"image_and_mask": {"background": "photo.png", "layers": []}}, None),
    ],
)
def test_an_image_that_is_not_a_file_is_a_message_naming_the_input(client, endpoint, values, label):
    """A plain string or number where a file belongs (a path sent without handle_file): Gradio checks
    the value before any code of the studio runs; the message still names the input and the fix."""
    with pytest.raises(AppError, match=rf"^{label or '.+'}: send a file \(gradio_client's handle_file"):
        client.predict(**values, api_name=endpoint)
    still_serving(client)


def test_a_small_file_declaring_a_picture_over_the_size_limit_is_refused_as_too_large(client, folder):
    """69 bytes declaring 5000×5000: refused by its header as larger than the studio takes (rather than
    decoded, then found cut short)."""
    path = bomb(folder / "large.png", 5000, 5000)
    with pytest.raises(AppError, match=r"^large.png is 5000×5000; this studio takes up to 2048 pixels"):
        client.predict(image=handle_file(str(path)), strength=0, api_name="/img2img")


def test_a_picture_too_large_for_the_upscale_tab_is_not_sent_to_the_upscale_tab(client, folder):
    path = bomb(folder / "huge.png", 9000, 9000)
    with pytest.raises(AppError) as refusal:
        client.predict(image=handle_file(str(path)), api_name="/upscale")
    assert str(refusal.value).startswith("huge.png is 9000×9000; this studio takes up to 2048 pixels")
    assert "Upscale tab" not in str(refusal.value) and "enlarge it here" in str(refusal.value)


def test_a_16_bit_background_is_inpainted_with_its_levels_kept(client, folder):
    """The editor's background keeps its 16 bits until the studio scales them (Gradio's RGB conversion
    would clip every level above 255 to white)."""
    path = folder / "inpaint-16-bit.png"
    expected = grey_16_bit(path)
    kept = inpainted_band(client, path, (WIDTH, HEIGHT), (16, 32))
    assert np.abs(kept[:16].astype(int) - expected[:16]).max() <= 1
    assert np.abs(kept[32:].astype(int) - expected[32:]).max() <= 1
