"""The named `/style_transfer` endpoint, both modes, called with gradio_client against the launched app."""

import numpy as np
import pytest
import skimage.data
from gradio_client import Client, handle_file
from PIL import Image

from studio.core.metadata import read_parameters

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("inputs") / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).resize((200, 150)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def painting(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("inputs") / "coffee.png"
    Image.fromarray(skimage.data.coffee()).resize((120, 80)).save(path)
    return str(path)


def test_instant_mix_of_two_built_in_styles(client, photo):
    styles = client.view_api(return_format="dict")["named_endpoints"]["/style_transfer"]["parameters"]
    names = next(p for p in styles if p["parameter_name"] == "neural_styles")["type"]["items"]["enum"]
    images, params = client.predict(
        image=handle_file(photo),
        mode="instant",
        neural_styles=names[:2],
        weight_1=0.7,
        weight_2=0.3,
        working_size=256,
        api_name="/style_transfer",
    )
    [result] = images
    with Image.open(result["image"]) as made, Image.open(photo) as original:
        assert made.format == "PNG" and made.size == original.size
        assert np.abs(np.asarray(made, float) - np.asarray(original.convert("RGB"), float)).mean() > 5
    saved = read_parameters(result["image"])
    assert saved.task == "style_transfer" and saved.extras["mode"] == "instant"
    assert params[0]["extras"]["mode"] == "instant"


def test_instant_with_a_painting_as_the_style(client, photo, painting):
    images, _ = client.predict(
        image=handle_file(photo),
        mode="instant",
        style_image=handle_file(painting),
        style_source="image",
        working_size=256,
        api_name="/style_transfer",
    )
    with Image.open(images[0]["image"]) as made:
        assert made.size == (200, 150)


def test_diffusion_with_structure_and_style_image(client, photo, painting):
    images, params = client.predict(
        image=handle_file(photo),
        mode="diffusion",
        style_image=handle_file(painting),
        structure="canny",
        prompt="oil painting",
        num_images=2,
        seed=9,
        steps=2,
        api_name="/style_transfer",
    )
    assert len(images) == 2 and [p["seed"] for p in params] == [9, 10]
    saved = read_parameters(images[1]["image"])
    assert saved.extras["structure"] == "canny" and saved.extras["style_image"] == "120x80"
    assert saved.user_prompt == "oil painting"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "instant", "neural_styles": []}, "Pick a style"),
        ({"mode": "instant", "weight_1": 0.0}, "The style weights sum to zero"),
        ({"mode": "diffusion", "structure": "depth", "prompt": "ink"}, "no Depth ControlNet for SD1 models"),
        ({"mode": "diffusion"}, "Give the style: a style image, style presets, or a prompt"),
    ],
)
def test_bad_requests_are_messages(client, photo, values, message):
    with pytest.raises(Exception, match=message):
        client.predict(image=handle_file(photo), **values, api_name="/style_transfer")
