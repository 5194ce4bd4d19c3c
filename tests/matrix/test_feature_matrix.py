"""Every diffusion task × backend × feature on the tiny models: each makes its image or refuses plainly.

A CPU user runs OpenVINO by default; a GPU user runs torch. Both run here on the defaults a user gets (the
fast decoder, the machine's precision), for every family (SD 1.x, SDXL, FLUX.1, FLUX.2 [klein], SD 3.5,
Z-Image, Qwen-Image, SANA-Sprint): the default every cell, torch every cell OpenVINO runs whole (which
records `Backend: openvino` and stays close to torch's pixels) and, of the cells that stay on torch (every
transformer family), the plain feature's, where both run the same torch code.
The cells are in tests/matrix/cells.py (bench/gpu_matrix.py runs them on a GPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.diffusion import draft_seed
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import InvalidRequest
from studio.core.openvino_backend import ConvertedModels
from studio.core.presets import load_presets
from studio.core.requests import parse_request
from tests.matrix.cells import (
    FAMILIES,
    FEATURES,
    LONG_PROMPT,
    TASKS,
    TORCH_FAMILIES,
    stays_on_torch,
    values_for,
    write_matrix_presets,
)
from tests.tiny_models import build_lora

LORAS = {"sd": "detail:0.8", "sdxl": "xl-ink", **{family: f"{family}-ink:0.8" for family in TORCH_FAMILIES}}


@pytest.fixture(scope="module")
def family_models(
    tiny_sd, tiny_sdxl, tiny_flux, tiny_flux2_klein, tiny_sd3, tiny_zimage, tiny_qwen_image, tiny_sana_sprint
) -> dict[str, Path]:
    """The tiny model of each family in the matrix."""
    return {"sd": tiny_sd, "sdxl": tiny_sdxl, "flux": tiny_flux, "flux2": tiny_flux2_klein, "sd3": tiny_sd3,
            "zimage": tiny_zimage, "qwen": tiny_qwen_image, "sana": tiny_sana_sprint}  # fmt: skip


@pytest.fixture(scope="module")
def matrix_presets(fast_decoder_presets_dir, family_models, tiny_sd_inpaint, tmp_path_factory):
    """The tiny presets, TAESD-like fast decoder included, with a preset per family: "sd" (with its
    inpainting checkpoint), "sdxl", "flux", "sd3", "zimage" and "qwen"."""
    folder = tmp_path_factory.mktemp("matrix-presets")
    models = family_models
    resolutions = dict.fromkeys(models, 64)  # the tiny models' own size
    return load_presets(
        write_matrix_presets(folder, fast_decoder_presets_dir, models, resolutions, tiny_sd_inpaint)
    )


@pytest.fixture(scope="module")
def lora_folder(family_models, tmp_path_factory) -> Path:
    """A LoRA of each family's: SD's and SDXL's with text-encoder weights, the others' as `build_lora`
    makes them."""
    folder = tmp_path_factory.mktemp("matrix-loras")
    build_lora(family_models["sd"], folder / "detail.safetensors", seed=3, text_encoders=True)
    build_lora(family_models["sdxl"], folder / "xl-ink.safetensors", seed=5, text_encoders=True)
    for seed, family in enumerate(sorted(TORCH_FAMILIES), start=20):
        build_lora(family_models[family], folder / f"{family}-ink.safetensors", seed=seed, text_encoders=True)
    return folder


@pytest.fixture(scope="module")
def caches(lora_folder, tmp_path_factory):
    """One studio's cache per backend, kept for the module as a studio keeps it between requests."""
    cpu = resolve_device("cpu")
    converted = ConvertedModels(tmp_path_factory.mktemp("openvino"))
    built = {
        "torch": ModelCache(cpu, offline=True),
        "openvino": ModelCache(cpu, offline=True, backend="openvino", converted=converted),
    }
    yield built
    for cache in built.values():
        cache.clear()


def run_cell(cache, presets, task: str, values: dict, loras: Path):
    pipeline = TASKS[task](cache, presets, loras_dir=loras)
    return pipeline(parse_request(pipeline.request_type, values))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_and_feature_makes_its_image_on_both_backends_or_refuses_plainly(
    caches, matrix_presets, lora_folder, family_models, task, feature, family
):
    models = family_models
    values = values_for(task, feature, family, 64, LORAS)
    # The preset is for the inpainting UNet; elsewhere the model's own size (64²), which keeps the matrix
    # quick; Qwen-Image's autoencoder names no size (the family's is 1328²): its preset's 64²
    if task not in {"inpaint", "outpaint"} and family != "qwen":
        values["model"] = str(models[family])
    # A cell that stays on torch runs the same torch code on both caches: the torch-configured one (a GPU
    # user's) runs it for the plain feature only, to show it records no backend, as the default names it
    on_torch_anyway = stays_on_torch(task, feature, family)
    backends = ["openvino"] if on_torch_anyway and feature != "plain" else ["torch", "openvino"]
    results = {}
    for backend in backends:
        try:
            results[backend] = run_cell(caches[backend], matrix_presets, task, values, lora_folder)
        except InvalidRequest as refusal:  # a plain sentence, the same on both backends
            results[backend] = str(refusal)
    refusals = {backend: r for backend, r in results.items() if isinstance(r, str)}
    if refusals:
        assert len(refusals) == len(backends) and len(set(refusals.values())) == 1, results
        refusal = refusals["openvino"]
        assert "Unexpected" not in refusal and refusal.endswith((".", ")")), refusals
        return
    on_openvino = results["openvino"][0]
    expected = "torch" if on_torch_anyway else "openvino"
    assert on_openvino.parameters.extras["backend"] == expected
    if "torch" not in results:
        return
    on_torch = results["torch"][0]
    assert on_torch.image.size == on_openvino.image.size
    assert "backend" not in on_torch.parameters.extras
    difference = np.abs(pixels(on_openvino.image) - pixels(on_torch.image))
    if expected == "torch":
        assert difference.max() == 0, "the same torch run"
    else:
        mean = difference.mean()
        assert mean <= 4, f"OpenVINO at the CPU's precision stays close to torch ({mean:.2f})"


@pytest.fixture(scope="module")
def likes_red():
    from tests.unit.test_taste import rated_profile, redness

    return rated_profile(redness, 16, seed=13)


TASTE_FAMILIES = ["sd", "sdxl", "flux"]  # OpenVINO's two families, and one torch runs


@pytest.mark.parametrize("family", TASTE_FAMILIES)
@pytest.mark.parametrize("task", [task for task in TASKS if TASKS[task].steered_by_taste])
def test_taste_steering_with_a_long_weighted_styled_chaotic_prompt(
    caches, matrix_presets, lora_folder, family_models, likes_red, task, family
):
    """`--p` combined with the other prompt features (past 77 tokens, a weight, two styles, --chaos) on the
    machine's default backend (OpenVINO here; the torch path's drafts are tests/models/test_personalize.py's):
    the image is the draft the profile likes best, recorded with the profile, and the chosen draft's seed
    alone makes it again; or a plain refusal."""
    values = values_for(task, "plain", family, 64, LORAS)
    if task not in {"inpaint", "outpaint"}:
        values["model"] = str(family_models[family])
    values |= {"prompt": LONG_PROMPT + ", (fog:1.3)", "styles": ("Cinematic", "Analog Film"), "chaos": 30}
    steered = {"profile": likes_red.code, "taste": likes_red, "drafts": 2}
    default = caches["openvino"]
    try:
        [result] = run_cell(default, matrix_presets, task, values | steered, lora_folder)
    except InvalidRequest as refusal:
        assert "Unexpected" not in str(refusal) and str(refusal).endswith((".", ")")), refusal
        return
    seeds = (draft_seed(7, 0), draft_seed(7, 1))
    assert result.parameters.extras["personalize"] == likes_red.code
    assert result.parameters.extras["drafts"] == 2 and result.parameters.seed in seeds
    drafts = {
        seed: run_cell(default, matrix_presets, task, values | {"seed": seed}, lora_folder)[0]
        for seed in seeds
    }
    chosen = drafts[result.parameters.seed]
    assert np.array_equal(pixels(chosen.image), pixels(result.image))
    assert likes_red.score(chosen.image) == max(likes_red.score(draft.image) for draft in drafts.values())
