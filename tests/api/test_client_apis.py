"""The APIs other apps speak, called by their real clients against a launched studio: AUTOMATIC1111's
`/sdapi/v1` through `webuiapi`, OpenAI's Images API through the official `openai` package."""

from __future__ import annotations

import base64
import io
import re
import threading

import httpx
import numpy as np
import openai
import pytest
import requests
import webuiapi
from gradio_client import Client
from PIL import Image

from studio.core.metadata import GenerationParameters, read_parameters
from studio.core.settings import PROJECT_ROOT
from tests.conditions import FirstCallHeld, wait_until
from tests.conftest import launch_app, studio_settings

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def a1111(running_app) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(baseurl=running_app.url + "sdapi/v1", sampler="Euler", steps=3)


@pytest.fixture(scope="module")
def images_client(running_app) -> openai.OpenAI:
    return openai.OpenAI(base_url=running_app.url + "v1", api_key="unused", max_retries=0)


def parameters_of(image: Image.Image) -> GenerationParameters:
    found = read_parameters(image)
    assert isinstance(found, GenerationParameters), "the PNG carries the studio's parameters"
    return found


def saved_pngs(running_app) -> set:
    return set(running_app.outputs.rglob("*.png"))


def test_webuiapi_reads_what_the_studio_has(a1111, running_app):
    default = running_app.demo.studio.presets.default_model
    assert a1111.util_get_current_model() == default
    assert default in a1111.util_get_model_names()
    assert {"Euler", "Euler a", "DPM++ 2M Karras"} <= set(a1111.util_get_sampler_names())
    assert "karras" in a1111.util_get_scheduler_names()
    assert "Lanczos (no model)" in [u["name"] for u in a1111.get_upscalers()]
    assert "Cinematic" in [s["name"] for s in a1111.get_prompt_styles()]
    assert a1111.get_memory()["ram"]["total"] > 0
    assert a1111.get_scripts() == {"txt2img": [], "img2img": []}
    assert a1111.get_progress()["state"]["job_count"] == 0, "idle: SillyTavern waits for 0 after a switch"
    queue = requests.get(running_app.url + "queue/status")  # cyanic-sd-krita's first call
    assert queue.ok and queue.json()["queue_size"] == 0


def test_webuiapi_txt2img_with_seed_and_batches_answers_as_a1111_and_saves_to_the_history(a1111, running_app):
    before = saved_pngs(running_app)
    result = a1111.txt2img(
        prompt="a lighthouse at dawn",
        negative_prompt="fog",
        styles=["Cinematic"],
        seed=123,
        batch_size=2,
        n_iter=2,
        cfg_scale=5,
        width=256,
        height=256,
        restore_faces=True,  # not the studio's: made without, and recorded
    )
    assert len(result.images) == 4
    assert result.info["all_seeds"] == [123, 124, 125, 126] and result.info["seed"] == 123
    assert (
        result.info["sampler_name"] == "Euler" and result.info["steps"] == 3 and result.info["cfg_scale"] == 5
    )
    # width x height ask for a shape; the model's own resolution sets the pixels, as on the page
    assert (result.info["width"], result.info["height"]) == result.images[0].size
    assert result.images[0].width == result.images[0].height
    assert result.info["prompt"].startswith("cinematic") or "lighthouse" in result.info["prompt"]
    assert len(result.info["infotexts"]) == 4 and "Seed: 124" in result.info["infotexts"][1]
    assert result.parameters["prompt"] == "a lighthouse at dawn", "`parameters` echoes the request"
    recorded = [parameters_of(image) for image in result.images]
    assert [p.seed for p in recorded] == [123, 124, 125, 126]
    assert recorded[0].styles == ("Cinematic",) and recorded[0].user_negative_prompt == "fog"
    assert "restore_faces=true" in recorded[0].extras["ignored_parameters"]
    assert not any("eta" in note or "s_noise" in note for note in recorded[0].extras["ignored_parameters"]), (
        "the defaults webuiapi sends on every call are not listed"
    )
    assert len(saved_pngs(running_app) - before) == 4, "every image is in the history"


def test_a_webuiapi_image_is_made_again_pixel_for_pixel_through_the_page_api(a1111, running_app):
    made = a1111.txt2img(prompt="a red boat", seed=77, cfg_scale=6, width=256, height=256).image
    page = Client(running_app.url, verbose=False)
    images, _ = page.predict(
        prompt="a red boat", seed=77, steps=3, guidance_scale=6, sampler="Euler", aspect_ratio="1:1",
        num_images=1, api_name="/txt2img",
    )  # fmt: skip
    again = Image.open(images[0]["image"])
    assert np.array_equal(np.asarray(made.convert("RGB")), np.asarray(again.convert("RGB")))


def test_webuiapi_img2img_and_inpaint(a1111):
    source = Image.new("RGB", (80, 64), (200, 60, 40))
    changed = a1111.img2img(
        images=[source], prompt="a barn", denoising_strength=0.5, seed=5, width=64, height=64
    )
    assert changed.image.size == (64, 64), "resized to width x height first, as A1111 does"
    record = parameters_of(changed.image)
    assert record.task == "img2img" and record.seed == 5 and record.extras["denoising_strength"] == 0.5
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))  # white: repaint
    painted = a1111.img2img(
        images=[source.resize((64, 64))], mask_image=mask, prompt="a window", seed=6, width=64, height=64
    )
    record = parameters_of(painted.image)
    assert record.task == "inpaint"
    assert "inpainting_fill=0" in record.extras["ignored_parameters"], "fill (webuiapi's default) is not ours"
    from_noise = a1111.img2img(
        images=[source.resize((64, 64))], mask_image=mask, prompt="a window", denoising_strength=0.4,
        width=64, height=64, inpainting_fill=2,  # latent noise: repainted from scratch
    )  # fmt: skip
    assert parameters_of(from_noise.image).extras["denoising_strength"] == 1.0


def test_webuiapi_png_info_and_upscale(a1111):
    made = a1111.txt2img(prompt="a kite", seed=9, width=256, height=256).image
    info = a1111.png_info(made).json
    assert "Seed: 9" in info["info"] and info["parameters"]["Seed"] == "9"
    assert info["parameters"]["Prompt"] == "a kite" and info["parameters"]["Size-1"] == made.width
    upscaled = a1111.extra_single_image(made, upscaler_1="None", upscaling_resize=2)
    assert upscaled.image.size == (2 * made.width, 2 * made.height)


def three_batches(a1111, running_app, while_the_first_runs) -> webuiapi.WebUIApiResult:
    """webuiapi's txt2img of three batches (seeds 1, 2, 3), `while_the_first_runs()` called while the first
    is held inside its denoising call."""
    finished: dict = {}
    with FirstCallHeld(running_app.demo.studio.cache, "denoise") as held:
        worker = threading.Thread(
            target=lambda: finished.update(result=a1111.txt2img(prompt="a tower", n_iter=3, seed=1))
        )
        worker.start()
        held.inside.wait(30)
        while_the_first_runs()
    worker.join(60)
    return finished["result"]


def test_webuiapi_interrupt_ends_the_run_with_what_was_made(a1111, running_app):
    def interrupt() -> None:
        progress = a1111.get_progress()
        assert progress["state"]["job_count"] == 3 and progress["progress"] < 1
        a1111.interrupt()

    result = three_batches(a1111, running_app, interrupt)
    assert len(result.images) < 3, "the batches after the interrupted one never ran"
    wait_until(lambda: a1111.get_progress()["state"]["job_count"] == 0)


def test_webuiapi_skip_ends_the_current_batch_only(a1111, running_app):
    result = three_batches(a1111, running_app, a1111.skip)
    assert [parameters_of(image).seed for image in result.images] == [2, 3]


def test_a_client_run_and_a_page_run_take_turns(a1111, running_app):
    page = Client(running_app.url, verbose=False)
    finished: dict = {}

    def page_says(text: str) -> bool:
        return any(text in (unit.desc or "") for unit in queued.status().progress_data or [])

    with FirstCallHeld(running_app.demo.studio.cache, "denoise") as held:
        worker = threading.Thread(
            target=lambda: finished.update(client=a1111.txt2img(prompt="a tower", seed=1))
        )
        worker.start()
        held.inside.wait(30)
        queued = page.submit(prompt="a barn", seed=2, steps=2, num_images=1, api_name="/txt2img")
        wait_until(lambda: page_says("Waiting for the run before it to finish"), timeout=30)
        assert not queued.done(), "the page's run waits while the client's holds the models"
    images, _ = queued.result(timeout=60)
    worker.join(60)
    assert len(images) == 1 and len(finished["client"].images) == 1


def test_sdapi_refusals_come_in_a1111s_error_shape(running_app):
    base = running_app.url + "sdapi/v1"
    malformed = requests.post(
        f"{base}/txt2img", data="{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422 and "not JSON" in malformed.json()["detail"]
    unknown = requests.post(f"{base}/options", json={"sd_model_checkpoint": "no-such-model"})
    assert unknown.status_code == 400 and "no-such-model" in unknown.json()["detail"]
    sampler = requests.post(f"{base}/txt2img", json={"prompt": "x", "sampler_name": "Nonsense 3000"})
    assert sampler.status_code == 400 and "Euler a" in sampler.json()["detail"], "names the samplers it has"
    wrong_kind = requests.post(f"{base}/txt2img", json={"prompt": "x", "n_iter": "many"})
    assert wrong_kind.status_code == 422 and "many" in wrong_kind.json()["detail"]
    empty_login = requests.get(f"{base}/options", headers={"Authorization": "Basic "})
    assert empty_login.status_code == 200, "Open WebUI and SillyTavern send an empty login to open studios"


def test_options_switch_the_model_of_later_calls(running_app):
    base = running_app.url + "sdapi/v1"
    options = requests.get(f"{base}/options").json()
    # Every client sends back all the options it read, with the model changed.
    assert requests.post(f"{base}/options", json={**options, "sd_model_checkpoint": "sd-turbo"}).ok
    try:
        assert requests.get(f"{base}/options").json()["sd_model_checkpoint"] == "sd-turbo"
        refused = requests.post(f"{base}/txt2img", json={"prompt": "a hill", "steps": 2})
        assert refused.status_code == 400 and "sd-turbo" in refused.json()["detail"], "offline: not here"
    finally:
        requests.post(f"{base}/options", json={"sd_model_checkpoint": options["sd_model_checkpoint"]})
    assert requests.get(f"{base}/options").json() == options


def test_openai_generations_in_openais_shapes(images_client, running_app):
    before = saved_pngs(running_app)
    answer = images_client.images.generate(
        model="dall-e-3", prompt="a lighthouse", n=2, size="512x256", response_format="b64_json", quality="hd"
    )
    images = [Image.open(io.BytesIO(base64.b64decode(item.b64_json))) for item in answer.data]
    assert len(images) == 2 and images[0].width == 2 * images[0].height
    record = parameters_of(images[0])
    assert record.seed + 1 == parameters_of(images[1]).seed
    assert "quality=hd" in record.extras["ignored_parameters"]
    assert len(saved_pngs(running_app) - before) == 2
    linked = images_client.images.generate(prompt="a boat", response_format="url")
    fetched = httpx.get(linked.data[0].url)
    assert fetched.status_code == 200 and Image.open(io.BytesIO(fetched.content)).format == "PNG"
    assert [model.id for model in images_client.models.list()][
        0
    ] == running_app.demo.studio.presets.default_model


def test_openai_edits_repaint_a_masks_transparent_pixels(images_client, tmp_path):
    image_file, mask_file = tmp_path / "image.png", tmp_path / "mask.png"
    Image.new("RGB", (64, 64), (40, 90, 200)).save(image_file)
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))  # the left half transparent: repainted
    mask.save(mask_file)
    with open(image_file, "rb") as image, open(mask_file, "rb") as mask_handle:
        answer = images_client.images.edit(image=image, mask=mask_handle, prompt="a sunflower", n=1)
    edited = Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json)))
    assert parameters_of(edited).task == "inpaint" and edited.size == (64, 64)


def test_openai_edits_without_a_mask_are_instructions_to_the_editing_model(images_client, tmp_path):
    image_file = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (120, 120, 120)).save(image_file)
    with open(image_file, "rb") as image:
        answer = images_client.images.edit(image=image, prompt="make it night")
    edited = Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json)))
    record = parameters_of(edited)
    assert record.task == "edit" and record.model == "flux-kontext"


def test_openai_refusals_come_in_openais_error_shape(images_client):
    with pytest.raises(openai.NotFoundError) as unknown:
        images_client.images.generate(model="no-such-model", prompt="x")
    assert "no-such-model" in unknown.value.body["message"]
    with pytest.raises(openai.BadRequestError) as empty:
        images_client.images.generate(prompt="")
    assert "prompt" in empty.value.body["message"]


@pytest.fixture(scope="module")
def protected_app(tiny_sd, tiny_presets_dir, tmp_path_factory):
    settings = studio_settings(
        tiny_sd,
        tmp_path_factory.mktemp("protected-outputs"),
        presets_dir=tiny_presets_dir,
        auth=(("alice", "secret"),),
        api_keys=("sk-test",),
    )
    running = launch_app(settings)
    yield running
    running.demo.close()


def test_with_auth_wrong_credentials_get_401_and_nothing_runs(protected_app):
    before = saved_pngs(protected_app)
    base = protected_app.url
    for credentials in (None, ("alice", "wrong")):
        refused = requests.post(f"{base}sdapi/v1/txt2img", json={"prompt": "x", "steps": 1}, auth=credentials)
        assert refused.status_code == 401 and refused.json()["error"] == "Unauthorized"
    wrong_key = openai.OpenAI(base_url=base + "v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong_key.images.generate(prompt="x")
    assert saved_pngs(protected_app) == before
    flags = requests.get(f"{base}sdapi/v1/cmd-flags", auth=("alice", "secret")).json()
    assert "secret" not in str(flags) and "sk-test" not in str(flags), (
        "logins and keys never leave the server"
    )


def test_with_auth_the_right_credentials_run_as_that_user(protected_app):
    signed_in = webuiapi.WebUIApi(
        baseurl=protected_app.url + "sdapi/v1", username="alice", password="secret", steps=2
    )
    made = signed_in.txt2img(prompt="a hut", seed=4, width=256, height=256)
    assert len(made.images) == 1
    assert list((protected_app.outputs / "users" / "alice").rglob("*.png")), "in alice's history"
    keyed = openai.OpenAI(base_url=protected_app.url + "v1", api_key="sk-test", max_retries=0)
    assert len(keyed.images.generate(prompt="a hut").data) == 1


CLIENT_DOCS = (PROJECT_ROOT / "docs" / "clients.md").read_text(encoding="utf-8")
CLIENT_EXAMPLES = re.findall(
    r"^## From a script: `(\w+)`\n.*?```python\n(.*?)```", CLIENT_DOCS, flags=re.S | re.M
)


@pytest.mark.parametrize(("client", "code"), CLIENT_EXAMPLES, ids=[client for client, _ in CLIENT_EXAMPLES])
def test_the_clients_docs_examples_run(running_app, tmp_path, monkeypatch, capsys, client, code):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (96, 64), (90, 140, 60)).save("photo.png")
    mask = Image.new("RGBA", (96, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (30, 20, 60, 44))
    mask.save("mask.png")
    exec(
        compile(code.replace("http://127.0.0.1:7860/", running_app.url), f"docs/clients.md {client}", "exec"),
        {},
    )
    expected = {"webuiapi": "2 [42, 43]\n42\n", "openai": "2 True\n"}[client]
    assert capsys.readouterr().out.endswith(expected)
