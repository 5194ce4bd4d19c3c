"""Access on a studio others can reach: models only from presets and the model folders, the same answer
for a refused path whether or not it exists, only results served as files, and a per-visitor rate limit."""

import shutil

import httpx
import pytest
from gradio_client import Client

from studio.core.access import ModelAccess, RateLimit, Reference
from studio.core.errors import InvalidRequest
from studio.core.settings import load_settings
from tests.conftest import launch_app, studio_settings

REFUSED = "is not one this studio offers: choose one of its presets, or a file in its model folders."


# -- the decisions, on their own ----------------------------------------------------------------------------


def test_a_restricted_studio_takes_presets_and_files_inside_its_folders_only(tmp_path):
    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    access = ModelAccess(names={"sd-turbo"}, folders=(models,), any_path=False)
    allowed = ["sd-turbo", "", str(models / "checkpoints" / "mine.safetensors")]
    assert all(access.allows(Reference("Model", value)) for value in allowed)
    outside = ["/etc/passwd", "../../etc/passwd", str(models / ".." / "secret"), "org/model", "app.py", "~"]
    assert not any(access.allows(Reference("Model", value)) for value in outside)
    assert access.allows(Reference("LoRA", "detail", bare_name_in_folder=True)), "looked up in its folder"
    assert not access.allows(Reference("LoRA", "../detail", bare_name_in_folder=True))
    assert ModelAccess(any_path=True).allows(Reference("Model", "/etc/passwd")), "this machine's own user"


def test_a_link_out_of_the_model_folder_is_outside_it(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "elsewhere").symlink_to(tmp_path)
    access = ModelAccess(folders=(models,), any_path=False)
    assert not access.allows(Reference("Model", str(models / "elsewhere")))


def test_the_rate_limit_counts_each_visitor_in_a_sliding_minute():
    now = [1000.0]
    limit = RateLimit(2, clock=lambda: now[0])
    assert limit.wait_needed("ann") == limit.wait_needed("ann") == 0
    assert limit.wait_needed("bo") == 0, "each visitor has their own count"
    now[0] += 20
    assert limit.wait_needed("ann") == pytest.approx(40)
    with pytest.raises(InvalidRequest, match=r"at most 2 runs a minute from each visitor: try again in 40 s"):
        limit.check("ann")
    now[0] += 41
    assert limit.wait_needed("ann") == 0
    assert RateLimit(0).wait_needed("ann") == 0, "no limit unless one is set"


def test_a_visitor_is_the_user_or_the_address_a_proxy_saw():
    from types import SimpleNamespace

    from studio.ui.common import visitor_of

    def asking(host, forwarded="", username=None):
        headers = {"x-forwarded-for": forwarded} if forwarded else {}
        return SimpleNamespace(username=username, client=SimpleNamespace(host=host), headers=headers)

    assert visitor_of(asking("93.184.216.34", username="ann")) == "user:ann"
    assert visitor_of(asking("93.184.216.34", "198.51.100.1")) == "address:93.184.216.34", "not chosen by it"
    assert visitor_of(asking("127.0.0.1", "198.51.100.1, 198.51.100.7")) == "address:198.51.100.7"
    assert visitor_of(asking("10.0.3.4", "198.51.100.9")) == "address:198.51.100.9", "a Space's front end"
    assert visitor_of(None) == "address:local"


def test_the_flags_set_the_access_settings():
    settings = load_settings(["--share", "--allow-any-model-path", "--max-runs-per-minute", "6"])
    assert settings.any_model_path and settings.max_runs_per_minute == 6
    assert not load_settings(["--host", "0.0.0.0"]).any_model_path
    assert load_settings([]).any_model_path, "on this machine alone, any path"


# -- a studio others can reach, over the API ------------------------------------------------------------


@pytest.fixture(scope="module")
def reachable(tiny_sd, tiny_presets_dir, tmp_path_factory):
    """A studio on every interface, whose model folder holds a copy of the tiny model."""
    root = tmp_path_factory.mktemp("reachable")
    shutil.copytree(tiny_sd, root / "models" / "tiny-copy")
    settings = studio_settings(
        tiny_sd, root / "outputs", host="0.0.0.0", presets_dir=tiny_presets_dir, models_dir=root / "models",
        loras_dir=root / "models" / "loras", upscalers_dir=root / "models" / "upscalers",
        max_runs_per_minute=30,
    )  # fmt: skip
    running = launch_app(settings)
    yield running, root
    running.demo.close()


def refusal(client: Client, **values) -> str:
    with pytest.raises(Exception) as caught:
        client.predict(prompt="a fox", steps=1, api_name="/txt2img", **values)
    return str(caught.value)


def test_a_server_path_gets_the_same_answer_whether_or_not_it_exists(reachable, tiny_sd):
    running, _ = reachable
    client = Client(f"http://127.0.0.1:{running.demo.server_port}/", verbose=False)
    existing, missing = refusal(client, model="/etc"), refusal(client, model="/etc-not-there")
    assert existing == "Model '/etc' " + REFUSED
    assert missing == "Model '/etc-not-there' " + REFUSED
    assert refusal(client, model="../../etc/passwd") == "Model '../../etc/passwd' " + REFUSED
    for lora in ("../../etc/passwd", "/etc/hostname"):
        assert refusal(client, loras=lora) == f"LoRA {lora!r} " + REFUSED
    images, _ = client.predict(prompt="a fox", steps=1, seed=3, api_name="/txt2img")
    assert len(images) == 1, "the studio keeps serving"


def test_a_file_in_the_model_folder_and_the_studios_own_model_are_taken(reachable, tiny_sd):
    running, root = reachable
    client = Client(f"http://127.0.0.1:{running.demo.server_port}/", verbose=False)
    for model in (str(root / "models" / "tiny-copy"), str(tiny_sd)):
        images, parameters = client.predict(prompt="a fox", steps=1, seed=4, model=model, api_name="/txt2img")
        assert len(images) == 1 and parameters[0]["seed"] == 4


def test_an_upscaler_is_chosen_by_name_never_by_path(reachable, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    running, _ = reachable
    client = Client(f"http://127.0.0.1:{running.demo.server_port}/", verbose=False)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), "teal").save(photo)
    for name in ("../../etc/passwd", "/etc/passwd"):
        with pytest.raises(Exception, match=rf"^Unknown upscaler {name!r}\. Choose one of: "):
            client.predict(image=handle_file(str(photo)), upscaler=name, api_name="/upscale")


def test_only_results_and_uploads_are_served_as_files(reachable):
    running, root = reachable
    client = Client(f"http://127.0.0.1:{running.demo.server_port}/", verbose=False)
    images, _ = client.predict(prompt="a fox", steps=1, api_name="/txt2img")
    base = f"http://127.0.0.1:{running.demo.server_port}/gradio_api/file="
    result = next((root / "outputs").rglob("*.png"))
    assert httpx.get(base + str(result)).status_code == 200, "a result is served"
    for path in ("/etc/passwd", str(root / "models" / "tiny-copy" / "model_index.json"),
                 str(root / "outputs" / ".history.sqlite"), __file__):  # fmt: skip
        assert httpx.get(base + path).status_code in {403, 404}, path


def test_a_visitor_over_the_rate_limit_is_told_when_to_come_back(tiny_sd, tmp_path):
    settings = studio_settings(tiny_sd, tmp_path, max_runs_per_minute=2)
    running = launch_app(settings)
    try:
        client = Client(running.url, verbose=False)
        for _ in range(2):
            client.predict(prompt="a fox", steps=1, api_name="/txt2img")
        assert refusal(client).startswith("This studio takes at most 2 runs a minute from each visitor: ")
    finally:
        running.demo.close()
