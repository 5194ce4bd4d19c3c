"""What a newcomer hit, over the API: Vary's styles applied once, seeds only where there is one, messages that
name the field and the user's own file, a model checked and loaded at start."""

import os
import re
import subprocess
import sys
import time

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from studio.core.metadata import read_parameters
from studio.core.settings import PROJECT_ROOT
from tests.api.test_download_progress_api import wait_until_up
from tests.conftest import free_port

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def newest_saved(outputs, count: int = 1) -> list:
    return sorted(outputs.glob("*/*.png"), key=lambda p: (p.parent.name, p.name))[-count:]


def test_vary_applies_the_source_images_styles_once(client, presets):
    styles = ["Cinematic", "Analog Film"]
    images, made = client.predict(prompt="a harbour", styles=styles, seed=3, steps=2, api_name="/txt2img")
    source = made[0]
    assert source["user_negative_prompt"] == "" and source["negative_prompt"], "the styles add a negative"
    path = images[0]["image"]
    for _ in range(2):  # a Vary of a Vary too
        varied, recorded = client.predict(image=handle_file(path), num_images=1, api_name="/vary")
        [again] = recorded
        assert again["negative_prompt"] == source["negative_prompt"], "each style's negative once"
        assert again["prompt"] == source["prompt"], "each style's template once"
        assert (again["user_prompt"], again["user_negative_prompt"]) == ("a harbour", "")
        assert again["styles"] == styles
        path = varied[0]["image"]


def test_a_result_with_no_seed_records_none_and_a_result_of_one_keeps_its_seed(client, running_app, tmp_path):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 32), "teal").save(photo)
    _, file, text = client.predict(image=handle_file(str(photo)), upscaler="Lanczos (no model)", scale=2,
                                   api_name="/upscale")  # fmt: skip
    [saved] = newest_saved(running_app.outputs)
    assert re.fullmatch(r"\d{5}-upscale\.png", saved.name), "no made-up seed in the file name"
    assert read_parameters(saved).seed is None and "Seed" not in text

    images, _ = client.predict(prompt="a lamp", seed=77, steps=2, api_name="/txt2img")
    client.predict(image=handle_file(images[0]["image"]), upscaler="Lanczos (no model)", scale=2,
                   api_name="/upscale")  # fmt: skip
    [saved] = newest_saved(running_app.outputs)
    assert saved.name.endswith("-upscale-77.png") and read_parameters(saved).seed == 77

    _, styled = client.predict(image=handle_file(str(photo)), mode="instant", neural_styles=["Night Swirl"],
                               working_size=256, api_name="/style_transfer")  # fmt: skip
    [saved] = newest_saved(running_app.outputs)
    assert styled[0]["seed"] is None and re.fullmatch(r"\d{5}-style_transfer\.png", saved.name)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"num_images": 7}, r"^Images \(num_images\) must be between 1 and 4 \(got 7\)\.$"),
        ({"steps": 0}, r"^Steps must be between 1 and 150 \(got 0\)\.$"),
        ({"aspect_ratio": "9:1"}, r"^Aspect ratio 9:1 is too extreme: give one from 1:4 to 4:1\.$"),
    ],
)
def test_range_and_choice_errors_name_the_field(client, values, message):
    with pytest.raises(Exception, match=message):
        client.predict(prompt="x", **values, api_name="/txt2img")


def test_messages_name_the_users_file_not_a_server_folder(client, tmp_path):
    import gradio

    text_file = tmp_path / "holiday photo.png"
    text_file.write_text("this is a shopping list, not a picture")
    with pytest.raises(Exception) as refused:
        client.predict(image=handle_file(str(text_file)), prompt="x", api_name="/img2img")
    message = str(refused.value)
    assert "holiday photo.png could not be read as an image" in message
    assert gradio.utils.get_upload_folder() not in message and "/tmp/" not in message


def test_the_chosen_model_is_checked_and_loaded_at_start(running_app):
    deadline = time.monotonic() + 60
    while not running_app.demo.studio.cache.stats().loaded_sources and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running_app.demo.studio.cache.stats().loaded_sources, "loaded before any Generate"


def test_a_broken_model_file_is_reported_at_start(tmp_path, tiny_sd):
    broken = tmp_path / "my-model.safetensors"
    broken.write_bytes(b"not a checkpoint at all")
    port = free_port()
    command = [sys.executable, "app.py", "--model", str(broken), "--device", "cpu", "--port", str(port),
               "--offline", "--outputs", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(tmp_path / "studio.log", "w") as log:
        studio = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/", studio)
            deadline = time.monotonic() + 30
            while (
                "my-model.safetensors" not in (tmp_path / "studio.log").read_text()
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
        finally:
            studio.terminate()
            studio.wait(timeout=30)
    lines = [
        line for line in (tmp_path / "studio.log").read_text().splitlines() if "my-model.safetensors" in line
    ]
    assert len(lines) == 1, lines
    assert "could not be read as a .safetensors checkpoint" in lines[0] and "download it again" in lines[0]


def test_the_readmes_offline_try_makes_a_model_and_presets_that_run_diffusion_style(tmp_path):
    from pipelines.diffusion_style import DiffusionStylePipeline, DiffusionStyleRequest
    from studio.core.cache import ModelCache
    from studio.core.devices import resolve_device
    from studio.core.presets import load_presets
    from studio.core.requests import parse_request
    from tests import tiny_models

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"python -m tests\.tiny_models (\S+) --presets (\S+) && python app\.py", readme)
    assert command, "the offline try comes with the commands at the top"
    assert readme.index(command.group(0)) < readme.index("## Text to Image")
    model, presets_dir = tmp_path / "tiny-sd", tmp_path / "tiny-presets"
    assert tiny_models.main([str(model), "--presets", str(presets_dir)]) == 0
    cache = ModelCache(resolve_device("cpu"), offline=True)
    photo = Image.radial_gradient("L").convert("RGB").resize((64, 64))
    values = {"model": str(model), "image": photo, "style_image": photo.rotate(90), "steps": 2, "seed": 1}
    [styled] = DiffusionStylePipeline(cache, load_presets(presets_dir))(
        parse_request(DiffusionStyleRequest, values)
    )
    assert styled.image.size == (64, 64) and styled.parameters.task == "style_transfer"
