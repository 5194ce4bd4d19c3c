"""The named `/upscale` endpoint, called with gradio_client against the launched app."""

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from studio.core.metadata import read_parameters

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def test_upscale_a_result_keeps_its_parameters(client):
    images, made = client.predict(prompt="a tiny robot", seed=21, steps=2, api_name="/txt2img")
    comparison, file, text = client.predict(
        image=handle_file(images[0]["image"]),
        upscaler="Real-ESRGAN AnimeVideo v3 x2",
        scale=2,
        api_name="/upscale",
    )
    with Image.open(file) as result, Image.open(images[0]["image"]) as source:
        assert result.format == "PNG" and result.size == (2 * source.width, 2 * source.height)
    params = read_parameters(file)
    assert (params.task, params.user_prompt, params.seed) == ("upscale", "a tiny robot", 21)
    assert params.extras["upscaler"] == "Real-ESRGAN AnimeVideo v3 x2"
    before, after = comparison
    with Image.open(after) as shown:
        assert shown.size == (2 * made[0]["width"], 2 * made[0]["height"])
    assert "Upscaler: Real-ESRGAN AnimeVideo v3 x2" in text


def test_lanczos_to_an_exact_size(client, tmp_path):
    source = tmp_path / "gradient.png"
    Image.fromarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8), (30, 1))).convert("RGB").save(source)
    _, file, _ = client.predict(
        image=handle_file(str(source)), upscaler="Lanczos (no model)", target_width=120, api_name="/upscale"
    )
    with Image.open(file) as result:
        assert result.size == (120, 72)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"upscaler": "Nope"}, "Unknown upscaler 'Nope'. Choose one of: Real-ESRGAN x4plus"),
        ({"scale": 8}, "would be 8800×320; the limit is 8192"),
    ],
)
def test_bad_requests_are_messages(client, tmp_path, values, message):
    source = tmp_path / "big.png"
    Image.new("RGB", (1100, 40), "white").save(source)
    with pytest.raises(Exception, match=message):
        client.predict(image=handle_file(str(source)), **values, api_name="/upscale")
