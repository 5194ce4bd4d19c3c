"""LoRAs on the shared base model: for one run only, several at once, recorded as AUTOMATIC1111 does."""

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.parts.loras import LoraChoice
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import InvalidRequest
from studio.core.metadata import read_parameters, save_png
from studio.core.requests import parse_request
from studio.ui.send_to import Sent
from tests.tiny_models import build_lora


@pytest.fixture(scope="module")
def lora_folder(tiny_sd, tiny_sdxl, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("loras")
    build_lora(tiny_sd, folder / "detail.safetensors", seed=3)
    build_lora(tiny_sd, folder / "ink.safetensors", seed=4, text_encoders=True)
    build_lora(tiny_sdxl, folder / "xl-ink.safetensors", seed=5, text_encoders=True)
    return folder


@pytest.fixture
def lora_cache():
    cache = ModelCache(resolve_device("cpu"), offline=True)
    yield cache
    cache.clear(collect=False)  # as conftest's `cache`


@pytest.fixture
def text_to_image(lora_cache, presets, lora_folder) -> TextToImagePipeline:
    return TextToImagePipeline(lora_cache, presets, loras_dir=lora_folder)


def request(model, **values) -> TextToImageRequest:
    values = {"prompt": "a red fox in the snow", "model": str(model), "steps": 3, "seed": 42, **values}
    return parse_request(TextToImageRequest, values)


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


def base_weights(cache: ModelCache) -> dict[str, torch.Tensor]:
    """Every loaded module's own weights, as the checkpoint has them (adapters left out)."""
    weights = {}
    for entry in cache.registry.entries():
        if isinstance(entry.module, torch.nn.Module):
            for name, tensor in entry.module.state_dict().items():
                if "lora_" not in name:
                    weights[f"{entry.key.component}.{name.replace('.base_layer', '')}"] = tensor.clone()
    return weights


def test_a_choice_is_a_name_and_a_weight():
    assert LoraChoice.parse("detail") == LoraChoice("detail", 1.0)
    assert LoraChoice.parse(" paper cut : -0.5 ") == LoraChoice("paper cut", -0.5)
    assert str(LoraChoice.parse("detail:0.80")) == "detail:0.8"
    with pytest.raises(InvalidRequest, match="between -4 and 4"):
        LoraChoice.parse("detail:9")


def test_a_lora_changes_the_image_for_its_run_only_and_never_the_base_weights(text_to_image, tiny_sd):
    before = text_to_image(request(tiny_sd))[0]
    weights = base_weights(text_to_image.cache)
    with_lora = text_to_image(request(tiny_sd, loras=("detail:0.8",)))[0]
    assert not np.array_equal(pixels(with_lora), pixels(before))
    assert np.array_equal(pixels(text_to_image(request(tiny_sd))[0]), pixels(before))
    after = base_weights(text_to_image.cache)
    assert weights.keys() == after.keys()
    assert all(torch.equal(weights[name], after[name]) for name in weights)
    # Its weight counts, and weight 0 is the base model itself.
    stronger = text_to_image(request(tiny_sd, loras=("detail:1.6",)))[0]
    assert not np.array_equal(pixels(stronger), pixels(with_lora))
    assert np.array_equal(pixels(text_to_image(request(tiny_sd, loras=("detail:0",)))[0]), pixels(before))


def test_several_loras_stack_and_one_with_text_encoder_weights_loads_too(text_to_image, tiny_sd, lora_folder):
    detail = text_to_image(request(tiny_sd, loras=("detail",)))[0]
    ink = text_to_image(request(tiny_sd, loras=("ink",)))[0]
    both = text_to_image(request(tiny_sd, loras="detail:1, ink:0.7"))[0]
    assert len({pixels(r).tobytes() for r in (detail, ink, both)}) == 3
    assert both.parameters.extras["loras"] == ["detail:1", "ink:0.7"]
    again = text_to_image(request(tiny_sd, loras=("detail",)))[0]
    assert np.array_equal(pixels(again), pixels(detail)), "a LoRA is read once and stays ready"
    assert text_to_image.cache.registry.weight_loads <= 3  # the base model and the two LoRAs
    loras = [e for e in text_to_image.cache.registry.entries() if e.key.component == "lora"]
    assert sorted(e.size_bytes for e in loras) == sorted(
        (lora_folder / f"{name}.safetensors").stat().st_size for name in ("detail", "ink")
    ), "counted with their base model"
    assert {e.unit for e in loras} == {str(tiny_sd)}


def test_a_run_records_the_loras_and_their_hashes_and_png_info_reads_them_back(
    text_to_image, tiny_sd, lora_folder, tmp_path
):
    [result] = text_to_image(request(tiny_sd, loras=("detail:0.8",)))
    digest = hashlib.sha256((lora_folder / "detail.safetensors").read_bytes()).hexdigest()[:12]
    assert result.parameters.extras["lora_hashes"] == f"detail: {digest}"
    text = result.parameters.to_text()
    assert text.startswith("a red fox in the snow <lora:detail:0.8>\n")
    assert f'Lora hashes: "detail: {digest}"' in text
    path = tmp_path / "fox.png"
    save_png(result.image, path, result.parameters)
    sent = Sent.of(str(path), read_parameters(path).to_dict())
    assert (sent.prompt, sent.loras) == ("a red fox in the snow", "detail:0.8")


def test_another_studios_lora_tags_are_sent_as_loras():
    fields = {"prompt": "masterpiece, a fox <lora:detail:0.6>", "seed": 3, "generator": "AUTOMATIC1111"}
    sent = Sent.of(None, fields)
    assert (sent.prompt, sent.loras) == ("masterpiece, a fox", "detail:0.6")


def test_concurrent_runs_with_different_loras_each_get_their_own(text_to_image, tiny_sd):
    alone = {
        lora: pixels(text_to_image(request(tiny_sd, loras=lora, num_images=2))[1])
        for lora in ("", "detail", "ink:0.5")
    }
    results, errors = {}, []

    def run(lora: str) -> None:
        try:
            results[lora] = pixels(text_to_image(request(tiny_sd, loras=lora, num_images=2))[1])
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=run, args=(lora,)) for lora in alone for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(np.array_equal(results[lora], alone[lora]) for lora in alone)


def test_sdxl_takes_a_lora_with_both_text_encoders(text_to_image, tiny_sdxl):
    before = text_to_image(request(tiny_sdxl))[0]
    styled = text_to_image(request(tiny_sdxl, loras=("xl-ink",)))[0]
    assert not np.array_equal(pixels(styled), pixels(before))
    assert np.array_equal(pixels(text_to_image(request(tiny_sdxl))[0]), pixels(before))


def test_an_unknown_lora_is_refused_before_anything_loads_and_names_the_folders_loras(text_to_image, tiny_sd):
    with pytest.raises(InvalidRequest) as error:
        text_to_image(request(tiny_sd, loras=("detial",)))
    assert "Unknown LoRA 'detial'" in str(error.value)
    assert "detail, ink, xl-ink" in str(error.value)
    assert text_to_image.cache.registry.weight_loads == 0


def test_a_pickled_lora_is_refused(text_to_image, tiny_sd, tmp_path):
    pickle = tmp_path / "old.ckpt"
    pickle.write_bytes(b"not loaded")
    with pytest.raises(InvalidRequest, match="only .safetensors files are loaded"):
        text_to_image(request(tiny_sd, loras=(str(pickle),)))


def test_a_hub_lora_downloads_on_first_use(monkeypatch, presets, tiny_sd, lora_folder, tmp_path):
    import huggingface_hub

    from studio.core.models import _REACHABILITY
    from tests.fake_hub import serve_hub

    repository = tmp_path / "repository"
    repository.mkdir()
    (repository / "pytorch_lora_weights.safetensors").write_bytes(
        (lora_folder / "detail.safetensors").read_bytes()
    )
    with serve_hub({"studio-test/detail-lora": repository}) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(
            huggingface_hub.constants,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        )
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
        _REACHABILITY.clear()
        cache = ModelCache(resolve_device("cpu"), offline=False)
        pipeline = TextToImagePipeline(cache, presets, loras_dir=lora_folder)
        from_hub = pipeline(request(tiny_sd, loras=("studio-test/detail-lora:0.8",)))[0]
        from_folder = pipeline(request(tiny_sd, loras=("detail:0.8",)))[0]
        cache.clear()
    _REACHABILITY.clear()
    assert np.array_equal(pixels(from_hub), pixels(from_folder))
    assert (
        from_hub.parameters.extras["lora_hashes"].split(": ")[1]
        == (from_folder.parameters.extras["lora_hashes"].split(": ")[1])
    ), "the hash of the file itself"
    assert from_hub.parameters.extras["loras"] == ["studio-test/detail-lora:0.8"]
