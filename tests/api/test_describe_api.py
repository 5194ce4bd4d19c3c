"""/describe over the API: four prompt suggestions for an image, from the tiny captioner in the cache;
the other tasks' models are not touched."""

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def test_describe_gives_four_distinct_prompts_with_the_images_shape(client, tmp_path):
    photo = tmp_path / "tall.png"
    noise = np.random.default_rng(3).integers(0, 256, (96, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(photo)
    prompts = list(client.predict(image=handle_file(str(photo)), api_name="/describe"))
    assert len(prompts) == 4 and len(set(prompts)) == 4
    assert all(prompt.strip() and prompt.endswith(" --ar 2:3") for prompt in prompts), prompts
    again = client.predict(image=handle_file(str(photo)), api_name="/describe")
    assert list(again) == prompts, "the same image gets the same suggestions"


def test_describe_leaves_the_base_model_loaded_and_runs_beside_it(client, running_app, tmp_path):
    client.predict(prompt="a lantern", steps=1, api_name="/txt2img")
    photo = tmp_path / "square.png"
    Image.new("RGB", (64, 64), "teal").save(photo)
    prompts = client.predict(image=handle_file(str(photo)), api_name="/describe")
    assert len(prompts) == 4 and not any("--ar" in prompt for prompt in prompts), "a square needs no --ar"
    kinds = {entry.key.component for entry in running_app.demo.studio.cache.registry.entries()}
    assert "captioner" in kinds and "unet" in kinds, kinds
    images, _ = client.predict(prompt="a lantern", steps=1, api_name="/txt2img")
    assert len(images) == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image": None}, r"^Add an image first"),
        (
            {"captioner": "../../etc/passwd"},
            r"^Captioner '\.\./\.\./etc/passwd': .* is neither an existing folder",
        ),
        (
            {"captioner": "no-such-captioner"},
            r"^Unknown captioner 'no-such-captioner'\. Choose one of: blip-base, blip-large",
        ),
    ],
)
def test_describe_refuses_bad_input_with_a_message(client, tmp_path, values, message):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), "teal").save(photo)
    with pytest.raises(AppError, match=message):
        client.predict(**{"image": handle_file(str(photo)), **values}, api_name="/describe")
