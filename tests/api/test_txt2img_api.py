"""The named `/txt2img` endpoint, called with gradio_client against the app launched on a free port."""

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from studio.core.metadata import read_parameters

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def test_api_lists_txt2img_with_named_parameters(client):
    info = client.view_api(print_info=False, return_format="dict")
    endpoint = info["named_endpoints"]["/txt2img"]
    names = [parameter["parameter_name"] for parameter in endpoint["parameters"]]
    assert names == [
        "prompt",
        "negative_prompt",
        "styles",
        "model",
        "aspect_ratio",
        "num_images",
        "seed",
        "steps",
        "guidance_scale",
        "sampler",
        "batch",
        "stylize",  # added later, so last: positional calls keep working
        "chaos",
        "tile",
        "loras",
        "previews",
        "decoder",
        "style_image_1",  # image prompts, added after those
        "style_image_2",
        "style_image_3",
        "style_image_weight_1",
        "style_image_weight_2",
        "style_image_weight_3",
        "style_weight",
        "object_image",
        "object_weight",
    ]
    assert len(endpoint["returns"]) == 2, "images and their parameters, nothing internal"


def test_txt2img_returns_pngs_carrying_their_parameters(client, running_app):
    images, parameters = client.predict(
        prompt="a lighthouse at dawn",
        styles=["Cinematic"],
        num_images=2,
        seed=11,
        steps=3,
        api_name="/txt2img",
    )
    assert [p["seed"] for p in parameters] == [11, 12]
    assert len(images) == 2
    for item, expected in zip(images, parameters, strict=True):
        with Image.open(item["image"]) as image:
            assert image.format == "PNG"
            assert image.size == (expected["width"], expected["height"])
        embedded = read_parameters(item["image"])
        assert embedded.to_dict() == expected
        assert embedded.user_prompt == "a lighthouse at dawn" and embedded.styles == ("Cinematic",)
    saved = sorted(running_app.outputs.glob("*/*.png"))
    assert len(saved) >= 2


def test_same_request_same_seed_same_pixels(client):
    first, _ = client.predict(prompt="a red kite", seed=5, steps=2, api_name="/txt2img")
    second, _ = client.predict(prompt="a red kite", seed=5, steps=2, api_name="/txt2img")
    with Image.open(first[0]["image"]) as a, Image.open(second[0]["image"]) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert first[0]["image"] != second[0]["image"], "each result is its own file"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prompt": ""}, "Type a prompt first"),
        ({"prompt": "x", "styles": ["Nope"]}, "^Unknown style 'Nope'. See the style list for names.$"),
        (
            {"prompt": "x", "seed": 99999999999},
            r"^Seed must be between -1 and 4294967295 \(got 99999999999\)\.$",
        ),
        ({"prompt": "x", "sampler": "Nope"}, "^Unknown sampler 'Nope'. Choose one of: "),
        ({"prompt": "x", "model": "sdxl"}, "stabilityai/stable-diffusion-xl-base-1.0"),
        ({"prompt": "x", "model": "/no/such/model"}, "does not exist"),
    ],
)
def test_bad_requests_answer_with_a_message_and_the_app_keeps_serving(client, values, message):
    with pytest.raises(Exception, match=message):
        client.predict(**values, api_name="/txt2img")  # the error's text is exactly the message
    images, _ = client.predict(prompt="still alive", steps=2, api_name="/txt2img")
    assert len(images) == 1


def test_previews_stream_while_denoising_and_the_answer_holds_only_the_finished_images(client, running_app):
    before = set(running_app.outputs.rglob("*.png"))
    job = client.submit(
        prompt="a lighthouse at dawn",
        steps=12,
        num_images=2,
        seed=4,
        previews="approximate",
        api_name="/txt2img",
    )
    images, parameters = job.result(timeout=120)
    outputs = job.outputs()
    captions = [item.get("caption") or "" for gallery, _ in outputs[:-1] for item in gallery]
    assert any(" · step " in caption for caption in captions), "previews reached the page as it ran"
    first_preview = next(
        i
        for i, (gallery, _) in enumerate(outputs)
        if any(" · step " in (item.get("caption") or "") for item in gallery)
    )
    assert first_preview < next(i for i, (_, params) in enumerate(outputs) if params), "before image 1"
    assert [p["seed"] for p in parameters] == [4, 5] and len(images) == 2
    assert not any(" · step " in (item.get("caption") or "") for item in images), "no preview in the answer"
    saved = set(running_app.outputs.rglob("*.png")) - before
    assert len(saved) == 2, "the history holds the two images, no preview"


def test_one_visitors_queued_runs_do_not_hold_anothers_single_run_behind_them(running_app):
    from tests.conditions import FirstCallHeld, wait_until

    ann, bo = Client(running_app.url, verbose=False), Client(running_app.url, verbose=False)

    def says(job, text: str) -> bool:
        return any(text in (unit.desc or "") for unit in job.status().progress_data or [])

    saved_before = set(running_app.outputs.rglob("*-txt2img-*.png"))
    with FirstCallHeld(running_app.demo.studio.cache, "denoise") as held:
        anns = [ann.submit(prompt="ann's", seed=700, steps=1, api_name="/txt2img")]
        assert held.inside.wait(30)
        anns += [ann.submit(prompt="ann's", seed=700 + n, steps=1, api_name="/txt2img") for n in range(1, 5)]
        # All four in line (they reach the server in any order, and wait in the order they came)
        wait_until(lambda: any(says(job, "Waiting for the 4 runs before it") for job in anns), timeout=30)
        bos = bo.submit(prompt="bo's", seed=900, steps=1, api_name="/txt2img")
        wait_until(lambda: says(bos, "Waiting for the run before it to finish"), timeout=30)
    for job in [*anns, bos]:
        job.result(timeout=60)
    saved = sorted(
        set(running_app.outputs.rglob("*-txt2img-*.png")) - saved_before, key=lambda path: path.name
    )
    seeds = [read_parameters(path).seed for path in saved]
    assert seeds[:2] == [700, 900] and sorted(seeds[2:]) == [701, 702, 703, 704], seeds
