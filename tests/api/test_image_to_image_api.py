"""The Image to Image endpoints and PNG Info, called with gradio_client against the launched app."""

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image, PngImagePlugin

from studio.core.metadata import read_parameters

pytestmark = pytest.mark.api
# Parameters added after the first ones were published come last, so positional calls keep working.
ADDED_LATER = ["stylize", "chaos", "tile", "loras", "previews", "decoder"]


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> str:
    y, x = np.mgrid[0:48, 0:64]
    array = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    path = tmp_path_factory.mktemp("inputs") / "picture.png"
    Image.fromarray(array).save(path)
    return str(path)


def parameter_names(client: Client, endpoint: str) -> list[str]:
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"][endpoint]
    return [p["parameter_name"] for p in info["parameters"]]


def test_endpoints_have_named_parameters(client):
    assert parameter_names(client, "/img2img") == [
        "image",
        "prompt",
        "negative_prompt",
        "styles",
        "model",
        "num_images",
        "seed",
        "steps",
        "guidance_scale",
        "sampler",
        "strength",
        *ADDED_LATER,
    ]
    assert parameter_names(client, "/vary") == ["image", "variation", "prompt", "num_images", "seed"]
    assert parameter_names(client, "/inpaint")[0] == "image_and_mask"
    assert parameter_names(client, "/inpaint")[-8:] == ["strength", "mask_blur", *ADDED_LATER]
    assert parameter_names(client, "/outpaint")[:2] == ["image", "direction"]
    assert parameter_names(client, "/outpaint")[-6:] == ADDED_LATER
    assert parameter_names(client, "/png_info") == ["image"]
    assert parameter_names(client, "/edit")[-2:] == ["picture_2", "picture_3"]


def test_edit_takes_pictures_the_instruction_names_and_a_model_reading_one_says_so(client, picture):
    instruction = "put the colours of picture 2 on picture 1"
    with pytest.raises(Exception, match=r"reads one picture, the image to edit: leave out the others\."):
        client.predict(image=handle_file(picture), picture_2=handle_file(picture), prompt=instruction,
                       api_name="/edit")  # fmt: skip
    images, parameters = client.predict(image=handle_file(picture), prompt=instruction, api_name="/edit")
    assert parameters[0]["task"] == "edit" and (parameters[0]["width"], parameters[0]["height"]) == (64, 48)


def test_img2img_strength_zero_returns_the_input(client, picture):
    images, parameters = client.predict(image=handle_file(picture), strength=0, api_name="/img2img")
    with Image.open(images[0]["image"]) as result, Image.open(picture) as original:
        assert np.array_equal(np.asarray(result), np.asarray(original))
    assert parameters[0]["extras"]["denoising_strength"] == 0


def test_img2img_makes_new_pngs_with_parameters(client, picture):
    images, parameters = client.predict(
        image=handle_file(picture),
        prompt="a mosaic",
        strength=0.6,
        num_images=2,
        seed=4,
        steps=3,
        api_name="/img2img",
    )
    assert [p["seed"] for p in parameters] == [4, 5]
    embedded = read_parameters(images[1]["image"])
    assert embedded.task == "img2img" and embedded.user_prompt == "a mosaic" and embedded.seed == 5


def test_vary_a_result_keeps_its_prompt_and_picks_a_new_seed(client):
    images, made = client.predict(prompt="a blue whale", seed=77, steps=2, api_name="/txt2img")
    varied, parameters = client.predict(
        image=handle_file(images[0]["image"]), variation="Strong", num_images=2, api_name="/vary"
    )
    assert len(varied) == 2
    assert all(p["user_prompt"] == "a blue whale" and p["task"] == "img2img" for p in parameters)
    assert parameters[0]["extras"]["denoising_strength"] == 0.7
    assert parameters[0]["seed"] != 77 or parameters[1]["seed"] != 78


def test_inpaint_keeps_the_unpainted_pixels(client, picture, tmp_path):
    mask = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    mask.paste((255, 255, 255, 255), (20, 12, 40, 32))
    mask_path = tmp_path / "mask.png"
    mask.save(mask_path)
    images, parameters = client.predict(
        image_and_mask={
            "background": handle_file(picture),
            "layers": [handle_file(str(mask_path))],
            "composite": None,
        },
        prompt="a red door",
        steps=3,
        mask_blur=0,
        api_name="/inpaint",
    )
    with Image.open(images[0]["image"]) as result, Image.open(picture) as original:
        changed = np.abs(np.asarray(result, dtype=int) - np.asarray(original, dtype=int)).max(axis=-1) > 0
    assert changed[12:32, 20:40].all() and not changed[:8].any() and not changed[:, 48:].any()
    assert parameters[0]["task"] == "inpaint"


def test_inpaint_without_a_mask_says_so(client, picture):
    with pytest.raises(Exception, match="Paint over the part"):
        client.predict(
            image_and_mask={"background": handle_file(picture), "layers": [], "composite": None},
            api_name="/inpaint",
        )


def test_outpaint_zoom_out_keeps_the_centre(client, picture):
    images, parameters = client.predict(
        image=handle_file(picture), direction="zoom_out_2", steps=2, api_name="/outpaint"
    )
    with Image.open(images[0]["image"]) as result, Image.open(picture) as original:
        assert result.size == (128, 96)
        assert np.array_equal(np.asarray(result)[24:72, 32:96], np.asarray(original))
    assert parameters[0]["extras"]["outpaint"] == "zoom_out_2"


def test_png_info_reads_ours_and_other_studios(client, tmp_path):
    images, made = client.predict(
        prompt="a quiet harbour", styles=["Ink Wash"], seed=3, steps=2, api_name="/txt2img"
    )
    text, fields = client.predict(image=handle_file(images[0]["image"]), api_name="/png_info")
    assert fields == made[0]
    assert text.startswith("sumi-e ink wash painting of a quiet harbour") and "Seed: 3" in text

    other = tmp_path / "other.png"
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a red barn\nNegative prompt: people\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
        "Seed: 99, Size: 512x768, Model: dreamshaper",
    )
    Image.new("RGB", (32, 48), "red").save(other, pnginfo=info)
    text, fields = client.predict(image=handle_file(str(other)), api_name="/png_info")
    assert fields["prompt"] == "a red barn" and fields["negative_prompt"] == "people"
    assert (fields["seed"], fields["steps"], fields["width"], fields["height"]) == (99, 20, 512, 768)
    assert text.startswith("Made with AUTOMATIC1111\na red barn\n") and "CFG scale: 7, Seed: 99" in text


def test_png_info_on_a_plain_image_reads_as_empty(client, tmp_path):
    """A picture without parameters is a normal case: empty text and fields, no error (the page adds a
    calm note, which is not part of the API)."""
    plain = tmp_path / "plain.png"
    Image.new("RGB", (16, 16)).save(plain)
    assert client.predict(image=handle_file(str(plain)), api_name="/png_info") == ("", {})


def test_img2img_without_an_image_is_a_message(client):
    with pytest.raises(Exception, match="Add an image first"):
        client.predict(image=None, prompt="x", api_name="/img2img")


def test_an_unreadable_image_is_a_message_and_nothing_is_lost(client, tmp_path, running_app):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really an image")
    before = set(running_app.outputs.glob("*/*.png"))
    with pytest.raises(Exception, match="could not be read"):
        client.predict(image=handle_file(str(broken)), prompt="x", api_name="/img2img")
    assert set(running_app.outputs.glob("*/*.png")) == before
    images, _ = client.predict(prompt="still serving", steps=2, api_name="/txt2img")
    assert len(images) == 1


def test_png_info_on_a_broken_file_is_one_clear_message(client, tmp_path):
    broken = tmp_path / "cut short.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n only the start of a picture")
    with pytest.raises(Exception, match=r"^cut short\.png could not be read as an image"):
        client.predict(image=handle_file(str(broken)), api_name="/png_info")
