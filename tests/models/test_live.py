"""Live frames on the tiny models, on the CPU's default backend: what a frame is, and what it reuses."""

import json
import shutil

import numpy as np
import pytest
import skimage.data
from PIL import Image

from pipelines.image_to_image import ImageToImagePipeline, ImageToImageRequest
from pipelines.live import LivePipeline, LiveRequest
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.presets import load_presets
from studio.core.requests import parse_request
from tests.conftest import OPENVINO_FOLDER
from tests.tiny_models import build_lora

PROMPT = "a red fox in the snow"


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


@pytest.fixture
def live(cache, tiny_presets):
    return LivePipeline(cache, tiny_presets)


def frame(live: LivePipeline, model, **values):
    return live.frame(
        parse_request(LiveRequest, {"prompt": PROMPT, "model": str(model), "seed": 5, **values})
    )


@pytest.mark.parametrize("model", ["tiny_sd", "tiny_sdxl"])
def test_a_frame_is_text_to_image_on_the_fast_backend_and_the_same_settings_give_the_same_frame(
    live, cache, tiny_presets, model, request
):
    model = request.getfixturevalue(model)
    made = frame(live, model)
    assert made.parameters.task == "live"
    assert made.parameters.extras["backend"] == "openvino", "a CPU's default backend"
    assert made.parameters.extras["live_size"] == "64x64", "a model made for 64 pixels is not halved"
    assert np.array_equal(pixels(frame(live, model).image), pixels(made.image))
    grid = TextToImagePipeline(cache, tiny_presets)(
        parse_request(TextToImageRequest, {"prompt": PROMPT, "model": str(model), "seed": 5, "steps": 4})
    )
    assert np.array_equal(pixels(grid[0].image), pixels(made.image)), "the frame Text to Image makes"


def test_a_small_edit_makes_a_small_change_and_a_new_seed_a_large_one(live, tiny_sd):
    made = pixels(frame(live, tiny_sd).image)
    edited = pixels(frame(live, tiny_sd, prompt=PROMPT + " at dusk").image)
    reseeded = pixels(frame(live, tiny_sd, seed=6).image)
    edit, seed = np.abs(edited - made).mean(), np.abs(reseeded - made).mean()
    assert 0 < edit < seed / 5, (edit, seed)


def test_moving_a_slider_encodes_no_prompt_again(live, tiny_sd):
    frame(live, tiny_sd, guidance_scale=0)
    frame(live, tiny_sd, guidance_scale=0, seed=9)
    frame(live, tiny_sd, guidance_scale=0, aspect_ratio="16:9")
    frame(live, tiny_sd, guidance_scale=0.5)  # at 1 or less, still no negative side
    assert live.prompts.encoded == 1
    frame(live, tiny_sd, guidance_scale=0, prompt=PROMPT + ", dusk")
    frame(live, tiny_sd, guidance_scale=4)  # guided: the negative prompt is encoded too
    assert live.prompts.encoded == 3


def test_a_sketched_frame_is_image_to_image_of_the_sketch(live, cache, tiny_presets, tiny_sd):
    sketch = Image.fromarray(skimage.data.astronaut()).resize((64, 64))
    made = frame(live, tiny_sd, image=sketch, strength=0.6)
    assert made.parameters.extras["sketch_strength"] == 0.6
    assert made.parameters.extras["backend"] == "openvino", "the sketch encoded by OpenVINO too"
    values = {
        "prompt": PROMPT,
        "model": str(tiny_sd),
        "seed": 5,
        "steps": 4,
        "image": sketch,
        "strength": 0.6,
    }
    varied = ImageToImagePipeline(cache, tiny_presets)(parse_request(ImageToImageRequest, values))
    assert np.array_equal(pixels(varied[0].image), pixels(made.image))
    plain = frame(live, tiny_sd)
    assert not np.array_equal(pixels(plain.image), pixels(made.image))


def test_a_presets_few_step_lora_makes_its_frames_on_the_fast_backend(tiny_sd, tiny_presets_dir, tmp_path):
    """A preset that names an LCM-style LoRA: Live adds it, with the sampler, steps and guidance it wants."""
    loras = tmp_path / "loras"
    build_lora(tiny_sd, loras / "lcm.safetensors", seed=4, text_encoders=True)
    folder = tmp_path / "presets"
    shutil.copytree(tiny_presets_dir, folder)
    models = json.loads((folder / "models.json").read_text())
    live = {"lora": "lcm:0.9", "sampler": "LCM", "steps": 4, "guidance_scale": 1.5}
    tiny = {"name": "tiny-lcm", "label": "Tiny", "source": str(tiny_sd), "family": "sd", "resolution": 256}
    tiny.update(steps=25, guidance_scale=7, sampler="DPM++ 2M Karras", live=live)
    models["models"].append(tiny)
    (folder / "models.json").write_text(json.dumps(models))
    cache = ModelCache.for_machine(resolve_device("cpu"), offline=True, openvino_folder=OPENVINO_FOLDER)
    try:
        made = LivePipeline(cache, load_presets(folder), loras_dir=loras).frame(
            parse_request(LiveRequest, {"prompt": PROMPT, "model": "tiny-lcm", "seed": 5})
        )
    finally:
        cache.clear(collect=False)
    p = made.parameters
    assert p.extras["loras"] == ["lcm:0.9"] and p.extras["backend"] == "openvino", "fused into a variant"
    assert (p.sampler, p.steps, p.guidance_scale) == ("LCM", 4, 1.5)
