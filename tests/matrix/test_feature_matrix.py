"""Every diffusion task × backend × feature on the tiny models: each makes its image or refuses plainly.

A CPU user runs OpenVINO by default; a GPU user runs torch. Both run here, cell by cell, on the defaults a
user gets (the fast decoder, the machine's precision), for SD 1.x and SDXL. A cell that OpenVINO runs whole
records `Backend: openvino` and stays close to torch's pixels; what stays on torch records why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from pipelines.blend import BlendPipeline
from pipelines.diffusion_style import DiffusionStylePipeline
from pipelines.image_to_image import ImageToImagePipeline
from pipelines.inpaint import InpaintPipeline
from pipelines.outpaint import OutpaintPipeline
from pipelines.text_to_image import TextToImagePipeline
from pipelines.upscale import LANCZOS, UpscalePipeline
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import InvalidRequest
from studio.core.openvino_backend import ConvertedModels
from studio.core.presets import load_presets
from studio.core.requests import parse_request
from tests.tiny_models import build_lora

TASKS = {
    "txt2img": TextToImagePipeline,
    "blend": BlendPipeline,
    "vary": ImageToImagePipeline,
    "inpaint": InpaintPipeline,
    "outpaint": OutpaintPipeline,
    "style_transfer": DiffusionStylePipeline,
    "creative_upscale": UpscalePipeline,
}
FEATURES = [
    "plain",
    "long_prompt",
    "weights",
    "two_styles",
    "chaos",
    "tile",
    "lora",
    "style_image",
    "odd_aspect",
]
LONG_PROMPT = ", ".join(["a lighthouse on a granite cliff at dusk", "waves breaking in white foam"] * 6)
TORCH_ONLY = {"blend", "style_transfer"}  # image prompts (IP-Adapters); ControlNet residuals
LORAS = {"sd": "detail:0.8", "sdxl": "xl-ink"}


def picture(size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).resize(size, Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def matrix_presets(fast_decoder_presets_dir, tiny_sd, tiny_sdxl, tiny_sd_inpaint, tmp_path_factory):
    """The tiny presets, TAESD-like fast decoder included, with a preset per family: "tiny" (with its
    inpainting checkpoint) and "tiny-xl"."""
    folder = tmp_path_factory.mktemp("matrix-presets")
    shutil.copytree(fast_decoder_presets_dir, folder, dirs_exist_ok=True)
    models = json.loads((folder / "models.json").read_text())
    common = {"steps": 2, "guidance_scale": 5, "sampler": "Euler"}
    models["models"] += [
        {"name": "tiny", "label": "Tiny", "source": str(tiny_sd), "inpaint_source": str(tiny_sd_inpaint),
         "family": "sd", "resolution": 256, **common},
        {"name": "tiny-xl", "label": "Tiny XL", "source": str(tiny_sdxl), "family": "sdxl",
         "resolution": 256, **common},
    ]  # fmt: skip
    (folder / "models.json").write_text(json.dumps(models))
    return load_presets(folder)


@pytest.fixture(scope="module")
def lora_folder(tiny_sd, tiny_sdxl, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("matrix-loras")
    build_lora(tiny_sd, folder / "detail.safetensors", seed=3, text_encoders=True)
    build_lora(tiny_sdxl, folder / "xl-ink.safetensors", seed=5, text_encoders=True)
    return folder


@pytest.fixture(scope="module")
def caches(lora_folder, tmp_path_factory):
    """One studio's cache per backend, kept for the module as a studio keeps it between requests."""
    cpu = resolve_device("cpu")
    converted = ConvertedModels(tmp_path_factory.mktemp("openvino"))
    built = {
        "torch": ModelCache(cpu, offline=True, lora_folder=lora_folder),
        "openvino": ModelCache(
            cpu, offline=True, lora_folder=lora_folder, backend="openvino", converted=converted
        ),
    }
    yield built
    for cache in built.values():
        cache.clear()


def values_for(task: str, feature: str, family: str) -> dict:
    """The request of one cell: the task's own inputs, then the feature on top."""
    model = "tiny" if family == "sd" else "tiny-xl"
    values: dict = {"model": model, "prompt": "a lighthouse by the sea", "seed": 7, "num_images": 1}
    size = (112, 48) if feature == "odd_aspect" else (64, 64)
    if task in {"vary", "inpaint", "outpaint", "style_transfer", "creative_upscale"}:
        values["image"] = picture(size)
    if task == "vary":
        values["strength"] = 0.6
    if task == "inpaint":
        mask = Image.new("L", size, 0)
        mask.paste(255, (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
        values["mask"] = mask
    if task == "outpaint":
        values["direction"] = "pan_right"
    if task == "blend":
        values.update(images=(picture((64, 64)), picture((48, 64)).rotate(90)))
    if task == "creative_upscale":
        values.update(mode="creative", upscaler=LANCZOS, scale=1.5, creative_strength=0.5)
    if task == "style_transfer":
        values["style_image"] = picture((64, 64)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if feature == "long_prompt":
        values["prompt"] = LONG_PROMPT
    elif feature == "weights":
        values["prompt"] = "(lighthouse:1.4) castle::2 fog::1"
    elif feature == "two_styles":
        values["styles"] = ("Cinematic", "Analog Film")
    elif feature == "chaos":
        values.update(prompt="a lighthouse, a castle, fog, gulls", chaos=50)
    elif feature == "tile":
        values["tile"] = True
    elif feature == "lora":
        values["loras"] = (LORAS[family],)
    elif feature == "style_image":
        values["style_images"] = (picture((64, 64)),)
    elif feature == "odd_aspect" and task in {"txt2img", "blend"}:
        values["aspect_ratio"] = "21:9"
    return values


def run_cell(cache, presets, task: str, values: dict):
    pipeline = TASKS[task](cache, presets)
    request = parse_request(pipeline.request_type, values)
    return pipeline(request)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_and_feature_makes_its_image_on_both_backends_or_refuses_plainly(
    caches, matrix_presets, task, feature, family
):
    values = values_for(task, feature, family)
    results = {}
    for backend, cache in caches.items():
        try:
            results[backend] = run_cell(cache, matrix_presets, task, values)
        except InvalidRequest as refusal:  # a plain sentence, the same on both backends
            results[backend] = str(refusal)
    refusals = {backend: r for backend, r in results.items() if isinstance(r, str)}
    if refusals:
        assert len(refusals) == 2 and len(set(refusals.values())) == 1, results
        assert "Unexpected" not in refusals["torch"] and refusals["torch"].endswith((".", ")")), refusals
        return
    on_torch, on_openvino = results["torch"][0], results["openvino"][0]
    assert on_torch.image.size == on_openvino.image.size
    assert "backend" not in on_torch.parameters.extras
    expected = "torch" if task in TORCH_ONLY or feature == "style_image" else "openvino"
    assert on_openvino.parameters.extras["backend"] == expected
    difference = np.abs(pixels(on_openvino.image) - pixels(on_torch.image))
    if expected == "torch":
        assert difference.max() == 0, "the same torch run"
    else:
        assert difference.mean() <= 4, (
            f"OpenVINO at the CPU's precision stays close to torch ({difference.mean():.2f})"
        )
