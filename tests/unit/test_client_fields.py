"""The client APIs' pure decisions: which of AUTOMATIC1111's fields a request asked for in vain, how a
request's images split into jobs, what an OpenAI mask repaints, and who may call."""

import base64
import io
from types import SimpleNamespace

import pytest
import webuiapi
from PIL import Image

from studio.client_apis.a1111 import A1111Api, ignored_fields
from studio.client_apis.credentials import KEY_USER, basic_user, bearer_user
from studio.client_apis.openai_images import transparent_area
from studio.client_apis.runs import ClientError, ClientJob, batches
from studio.core.presets import load_presets
from studio.core.settings import DEFAULT_PRESETS_DIR, Settings


def webuiapi_payload(method: str, **values) -> dict:
    """What webuiapi sends for `method(**values)`: every field it has, defaults included."""
    api = webuiapi.WebUIApi(baseurl="http://127.0.0.1:9/sdapi/v1")  # nothing there: it finds no extensions
    sent: dict = {}
    api.post_and_get_api_result = lambda url, json, use_async: sent.update(json)
    getattr(api, method)(**values)
    return sent


def test_the_defaults_webuiapi_sends_on_every_call_ask_for_nothing():
    assert ignored_fields(webuiapi_payload("txt2img", prompt="a fox"), "txt2img") == []
    image = Image.new("RGB", (8, 8))
    ignored = ignored_fields(webuiapi_payload("img2img", images=[image], prompt="a fox"), "img2img")
    assert ignored == ["inpainting_fill=0"], "fill with colours from around: not the studio's"


def test_what_the_studio_does_not_do_is_listed_with_its_value():
    payload = webuiapi_payload(
        "txt2img", prompt="a fox", restore_faces=True, subseed_strength=0.3, hr_scale=3,
        override_settings={"CLIP_stop_at_last_layers": 2, "sd_model_checkpoint": "x"},
    )  # fmt: skip
    assert set(ignored_fields(payload, "txt2img")) == {
        "restore_faces=true",
        "subseed_strength=0.3",
        "override_settings.CLIP_stop_at_last_layers=2",
    }, "the hires fix's settings count only when it is on; the model is taken"
    hires = ignored_fields({**payload, "enable_hr": True}, "txt2img")
    assert {"enable_hr=true", "hr_scale=3", "denoising_strength=0.7"} <= set(hires)


def test_a_requests_images_split_into_jobs_keep_their_seeds():
    assert batches(10, 5, 2) == [(10, 2), (12, 2), (14, 1)]
    seeds = [seed for seed, _ in batches(-1, 4, 1)]
    assert seeds == list(range(seeds[0], seeds[0] + 4)), "one random seed, image i gets s+i"


def test_an_openai_mask_repaints_its_transparent_pixels():
    assert transparent_area(Image.new("RGB", (4, 4))) is None
    assert transparent_area(Image.new("RGBA", (4, 4), (0, 0, 0, 255))) is None
    mask = Image.new("RGBA", (4, 4), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 2, 4))
    repaint = transparent_area(mask)
    assert repaint.getpixel((0, 0)) == 255 and repaint.getpixel((3, 0)) == 0


def caller(authorization: str = "") -> SimpleNamespace:
    return SimpleNamespace(headers={"authorization": authorization} if authorization else {})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_without_auth_anyone_may_call_even_with_an_empty_login():
    open_studio = Settings()
    assert basic_user(caller("Basic "), open_studio) is None
    assert bearer_user(caller("Bearer whatever"), open_studio) is None


def test_with_auth_only_a_users_login_and_a_studio_key_get_in(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# the team's keys\nsk-file\n\n")
    settings = Settings(auth=(("alice", "secret"),), api_keys=("sk-flag",), api_keys_file=keys)
    assert basic_user(caller(basic("alice", "secret")), settings) == "alice"
    for wrong in ("", "Basic ", basic("alice", "nope"), basic("bob", "secret"), "Basic !!!"):
        with pytest.raises(ClientError) as refused:
            basic_user(caller(wrong), settings)
        assert refused.value.status == 401
    assert bearer_user(caller("Bearer sk-flag"), settings) == KEY_USER
    assert bearer_user(caller("Bearer sk-file"), settings) == KEY_USER, "read from the file at each request"
    for wrong in ("", "Bearer sk-nope", "Bearer # the team's keys", basic("alice", "secret")):
        with pytest.raises(ClientError):
            bearer_user(caller(wrong), settings)
    with pytest.raises(ClientError, match="--api-key"):
        bearer_user(caller("Bearer anything"), Settings(auth=(("alice", "secret"),)))


def test_styles_the_studio_lacks_are_passed_over_and_listed_as_a1111_does():
    studio = SimpleNamespace(presets=load_presets(DEFAULT_PRESETS_DIR), settings=Settings())
    ignored: list[str] = []
    named = A1111Api(studio, runs=None).styles({"styles": ["Cinematic", "My Own Style", "None"]}, ignored)
    assert named == ["Cinematic"] and ignored == ["styles=My Own Style"]


def test_progress_says_how_far_the_client_run_got_and_shows_its_latest_preview():
    preview = Image.new("RGB", (8, 8), (200, 10, 10))
    job = ClientJob("txt2img", "address:127.0.0.1", images=4, made=1, step=2, steps=4, preview=preview)
    runs = SimpleNamespace(current=job)
    api = A1111Api(SimpleNamespace(presets=None, settings=Settings()), runs)
    progress = api.progress(skip_current_image=False)
    assert progress["progress"] == (1 + 2 / 4) / 4
    assert {k: progress["state"][k] for k in ("job_count", "job_no", "sampling_step", "sampling_steps")} == {
        "job_count": 4, "job_no": 1, "sampling_step": 2, "sampling_steps": 4,
    }  # fmt: skip
    shown = Image.open(io.BytesIO(base64.b64decode(progress["current_image"])))
    assert shown.getpixel((0, 0)) == (200, 10, 10)
    assert api.progress(skip_current_image=True)["current_image"] is None
    runs.current = None
    idle = api.progress(skip_current_image=False)
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0, (
        "SillyTavern waits for this after a switch"
    )
