"""Image prompts over the API: /blend, style references on /txt2img, style codes saved from images, from a
moodboard and from a result PNG, reused with --sref; --oref."""

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from studio.core.metadata import read_parameters
from studio.core.style_codes import STYLE_CHUNK, read_style

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("pictures")
    paths = []
    for number in range(4):
        noise = np.random.default_rng(number).integers(0, 256, (64, 80, 3), dtype=np.uint8)
        path = folder / f"picture-{number}.png"
        Image.fromarray(noise).save(path)
        paths.append(str(path))
    return paths


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def saved_path(item) -> str:
    return item["image"] if isinstance(item, dict) else item[0]


def test_blend_makes_a_grid_from_weighted_images(client, pictures):
    images, parameters = client.predict(
        image_1=handle_file(pictures[0]),
        image_2=handle_file(pictures[1]),
        image_weight_2=2.0,
        aspect_ratio="16:9",
        num_images=2,
        seed=4,
        steps=2,
        api_name="/blend",
    )
    assert len(images) == 2
    first = parameters[0]
    assert first["task"] == "blend" and first["seed"] == 4
    assert first["extras"]["blended_images"] == 2 and first["extras"]["blend_weights"] == [1.0, 2.0]
    width, height = Image.open(saved_path(images[0])).size
    assert width > height, "16:9"
    with pytest.raises(AppError, match=r"^Give 2 to 5 images to blend \(got 1\)"):
        client.predict(image_1=handle_file(pictures[0]), steps=1, api_name="/blend")


def test_a_style_saved_as_a_code_makes_the_same_image_as_its_references(client, pictures):
    references = {
        "style_image_1": handle_file(pictures[0]),
        "style_image_2": handle_file(pictures[1]),
        "style_image_weight_2": 2.0,
    }
    message, _, code = client.predict(**references, name="noise study", api_name="/save_style")
    assert f"--sref {code}" in message and len(code) == 8
    common = {"prompt": "a lighthouse", "seed": 9, "steps": 2}
    by_images, parameters = client.predict(**common, **references, api_name="/txt2img")
    assert parameters[0]["extras"]["style_code"] == code, "the recorded code is the saved one"
    by_code, parameters = client.predict(
        **{**common, "prompt": f"a lighthouse --sref {code}"}, api_name="/txt2img"
    )
    assert parameters[0]["extras"]["style_codes"] == [code]
    assert np.array_equal(pixels(saved_path(by_code[0])), pixels(saved_path(by_images[0])))
    weaker, parameters = client.predict(**common, **references, style_weight=20, api_name="/txt2img")
    assert parameters[0]["extras"]["style_weight"] == 20
    assert not np.array_equal(pixels(saved_path(weaker[0])), pixels(saved_path(by_images[0])))


def test_a_result_png_carries_its_style_and_png_info_saves_it(client, running_app, pictures):
    images, parameters = client.predict(
        prompt="a harbour", style_image_1=handle_file(pictures[2]), steps=1, api_name="/txt2img"
    )
    path = saved_path(images[0])
    style = read_style(path)
    assert style is not None and style.code == parameters[0]["extras"]["style_code"]
    assert STYLE_CHUNK in Image.open(path).info
    assert read_parameters(path).extras["style_references"] == 1
    message = client.predict(image=handle_file(path), name="harbour", api_name="/save_png_style")
    assert f"Saved as style code {style.code}" in message
    saved = {s.code: s for s in running_app.demo.studio.style_codes.list()}
    assert saved[style.code].name == "harbour"
    plain, _ = client.predict(prompt="a harbour", steps=1, api_name="/txt2img")
    with pytest.raises(AppError, match="carries no style to save"):
        client.predict(image=handle_file(saved_path(plain[0])), name="", api_name="/save_png_style")


def test_a_moodboard_is_one_code_and_random_picks_a_saved_one(client, running_app, pictures):
    gallery = [{"image": handle_file(path), "caption": None} for path in pictures[:3]]
    message, table, code = client.predict(
        images=gallery, name="Noise board", model="", api_name="/save_moodboard"
    )
    assert f"--sref {code}" in message
    rows = {row[0]: row for row in table["data"]}
    assert rows[code][1] == "Noise board" and rows[code][2] == 3
    _, parameters = client.predict(prompt="a field --sref random", seed=3, steps=1, api_name="/txt2img")
    picked = parameters[0]["extras"]["style_codes"][0]
    assert picked in {s.code for s in running_app.demo.studio.style_codes.list()}
    with pytest.raises(AppError, match="Give the moodboard a name"):
        client.predict(images=gallery, name=" ", model="", api_name="/save_moodboard")
    table, _ = client.predict(typed=code, api_name="/delete_style_code")
    assert code not in {row[0] for row in table["data"]}
    with pytest.raises(AppError, match=f"no style code '{code}'"):
        client.predict(prompt=f"a field --sref {code}", steps=1, api_name="/txt2img")


def test_an_object_reference_is_kept_and_bad_references_are_named(client, pictures):
    _, parameters = client.predict(
        prompt="a knight",
        object_image=handle_file(pictures[3]),
        object_weight=200,
        steps=1,
        api_name="/txt2img",
    )
    assert parameters[0]["extras"]["object_reference"] == "80x64"
    assert parameters[0]["extras"]["object_weight"] == 200
    with pytest.raises(AppError, match=r"^--sref 'http://x/y.png': give saved style codes or random"):
        client.predict(prompt="a knight --sref http://x/y.png", steps=1, api_name="/txt2img")
    with pytest.raises(AppError, match="Style image 1: send a file"):
        client.predict(prompt="a knight", style_image_1="not-a-file.png", steps=1, api_name="/txt2img")
