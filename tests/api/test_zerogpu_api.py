"""On ZeroGPU hardware requests run through a `spaces.GPU` function with a computed duration."""

import pickle
import sys
import types

import pytest
from gradio_client import Client

from pipelines.text_to_image import TextToImageRequest
from pipelines.upscale import UpscaleRequest
from studio.core.requests import parse_request
from studio.ui.zerogpu import MAX_SECONDS, MIN_SECONDS, gpu_seconds
from tests.conftest import launch_app, studio_settings

pytestmark = pytest.mark.api


class StandInSpaces(types.ModuleType):
    """What the platform's `spaces` package does that matters here: it asks the decorated function's
    duration for each call, and arguments and results cross a process boundary (pickled)."""

    def __init__(self) -> None:
        super().__init__("spaces")
        self.calls: list[tuple[str, int]] = []

    def GPU(self, duration):  # noqa: N802 (the platform's name)
        def decorate(function):
            def on_gpu(*args):
                seconds = duration(*args)
                args = pickle.loads(pickle.dumps(args))
                result = function(*args)
                self.calls.append((args[0], seconds))
                return pickle.loads(pickle.dumps(result))

            return on_gpu

        return decorate


@pytest.fixture(scope="module")
def zero_gpu_app(tiny_sd, tmp_path_factory):
    spaces = StandInSpaces()
    patch = pytest.MonkeyPatch()
    patch.setitem(sys.modules, "spaces", spaces)
    patch.setenv("SPACES_ZERO_GPU", "true")
    settings = studio_settings(tiny_sd, tmp_path_factory.mktemp("out"))
    running = launch_app(settings)
    yield running, spaces
    running.demo.close()
    patch.undo()


def test_requests_run_in_the_gpu_function_with_a_duration_from_the_request(zero_gpu_app):
    running, spaces = zero_gpu_app
    assert running.demo.studio.cache.stats().loaded_sources, "the default model was loaded at start-up"
    client = Client(running.url, verbose=False)
    short = client.predict(prompt="a bell", steps=2, seed=1, api_name="/txt2img")
    long = client.predict(prompt="a bell", steps=40, seed=1, num_images=4, api_name="/txt2img")
    assert len(short[0]) == 1 and len(long[0]) == 4
    assert [task for task, _ in spaces.calls] == ["txt2img", "txt2img"]
    (_, quick), (_, slow) = spaces.calls
    assert MIN_SECONDS <= quick < slow <= MAX_SECONDS
    frame, parameters, _ = client.predict(prompt="a bell", seed=1, api_name="/live")
    assert frame and parameters["task"] == "live"
    assert spaces.calls[-1][0] == "live", "a live frame runs in the GPU function too"


def test_durations_grow_with_the_work(presets):
    def txt2img(**values):
        return gpu_seconds("txt2img", parse_request(TextToImageRequest, {"prompt": "x", **values}), presets)

    assert txt2img(steps=4) == MIN_SECONDS
    assert txt2img(steps=30, num_images=4) > txt2img(steps=30, num_images=1) > MIN_SECONDS
    assert txt2img(steps=30, model="sdxl") > txt2img(steps=30)
    from PIL import Image

    big = Image.new("RGB", (2048, 2048))
    fast = gpu_seconds("upscale", parse_request(UpscaleRequest, {"image": big, "scale": 4}), presets)
    creative = gpu_seconds(
        "upscale", parse_request(UpscaleRequest, {"image": big, "scale": 4, "mode": "creative"}), presets
    )
    assert MIN_SECONDS < fast < creative <= MAX_SECONDS
