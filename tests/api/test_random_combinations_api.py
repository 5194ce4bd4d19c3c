"""Random combinations of features over the HTTP API, on the studio's default backend: each makes its images
or refuses in a plain sentence, never an unexpected error. Seeded, so a failure is the same on every run."""

import random

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from studio.core.openvino_backend import openvino_installed

pytestmark = pytest.mark.api

SEED = 2026
CALLS = 10
PROMPTS = [
    "a lighthouse",
    ", ".join(["a lighthouse on a granite cliff at dusk", "waves breaking in white foam"] * 5),  # 2 chunks
    "(lighthouse:1.4) castle::2 fog::1",
    "((a lighthouse)), [fog], gulls+",
]
FLAGS = ["--chaos 60", "--tile", "--ar 21:9", "--ar 2:3", "--no fog, people", "--stylize 600", "--seed 9"]
STYLES = ["Cinematic", "Analog Film", "Ink Wash", "Pixel Art"]
ENDPOINTS = ["/txt2img", "/img2img", "/outpaint"]
DEFAULT_BACKEND = "openvino" if openvino_installed() else None  # what a CPU runs; torch records none


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("combinations") / "photo.png"
    Image.radial_gradient("L").convert("RGB").resize((80, 48)).save(path)
    return str(path)


def combination(draw: random.Random, picture: str) -> tuple[str, dict]:
    endpoint = draw.choice(ENDPOINTS)
    flags = draw.sample(FLAGS, draw.randint(0, 3))
    values = {
        "prompt": " ".join([draw.choice(PROMPTS), *flags]),
        "styles": draw.sample(STYLES, draw.randint(0, 2)),
        "num_images": draw.randint(1, 2),
        "steps": 2,
    }
    if endpoint != "/txt2img":
        values["image"] = handle_file(picture)
    if endpoint == "/outpaint":
        values["direction"] = draw.choice(["zoom_out_1.5", "pan_left", "pan_down"])
    return endpoint, values


def test_random_combinations_make_images_or_refuse_plainly(client, picture):
    draw = random.Random(SEED)
    made = 0
    for _ in range(CALLS):
        endpoint, values = combination(draw, picture)
        try:
            images, parameters = client.predict(**values, api_name=endpoint)
        except Exception as refusal:  # gradio_client raises the studio's message as AppError
            assert "Unexpected error" not in str(refusal), (endpoint, values["prompt"], str(refusal))
            continue
        assert len(images) == values["num_images"], (endpoint, values["prompt"])
        assert all(p["extras"].get("backend") == DEFAULT_BACKEND for p in parameters), endpoint
        made += 1
    assert made >= CALLS - 2, "these are everyday combinations: nearly all make images"
