"""The OpenVINO CPU backend on the tiny models: the torch path's pixels, IR kept on disk, torch fallback."""

import numpy as np
import pytest

from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.downloads import preparation_reported_to
from studio.core.models import resolve_model
from studio.core.openvino_backend import ConvertedModels, choose_backend, openvino_installed
from studio.core.requests import parse_request

needs_openvino = pytest.mark.skipif(not openvino_installed(), reason="the openvino extra is not installed")


def request(model, **values) -> TextToImageRequest:
    values = {"prompt": "a red fox in the snow", "model": str(model), "steps": 3, "seed": 42, **values}
    return parse_request(TextToImageRequest, values)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def openvino_cache(folder, precision: str = "f32") -> ModelCache:
    converted = ConvertedModels(folder, precision)
    return ModelCache(resolve_device("cpu"), offline=True, backend="openvino", converted=converted)


def test_auto_is_openvino_on_a_cpu_where_it_is_installed_and_torch_elsewhere():
    cpu = resolve_device("cpu")
    assert choose_backend("torch", cpu, installed=True) == ("torch", None)
    assert choose_backend("auto", cpu, installed=True) == ("openvino", None)
    assert choose_backend("auto", cpu, installed=False) == ("torch", None)
    backend, notice = choose_backend("openvino", cpu, installed=False)
    assert backend == "torch" and 'pip install -e ".[openvino]"' in notice


@needs_openvino
def test_openvino_gives_the_torch_paths_pixels_and_a_second_start_reuses_the_converted_files(
    tiny_sd, fast_decoder_presets, tmp_path
):
    torch_cache = ModelCache(resolve_device("cpu"), offline=True)
    for decoder, decoded in (("full", "vae decoder"), ("fast", "taesd decoder")):
        on_torch = TextToImagePipeline(torch_cache, fast_decoder_presets)(request(tiny_sd, decoder=decoder))[
            0
        ]
        folder = tmp_path / decoder
        first, said = openvino_cache(folder), []
        with preparation_reported_to(said.append):
            on_openvino = TextToImagePipeline(first, fast_decoder_presets)(request(tiny_sd, decoder=decoder))
        on_openvino = on_openvino[0]
        assert first.converted.conversions == 3, "text encoder, UNet and decoder converted once"
        converting = [text.split(" for ")[0] for text in said if text.startswith("Converting")]
        assert converting == [f"Converting the {what}" for what in ("text encoder", "unet", decoded)]
        difference = np.abs(pixels(on_openvino.image) - pixels(on_torch.image))
        assert difference.max() <= 2, f"{decoder}: the same image to fp32 rounding"
        assert on_openvino.parameters.extras["backend"] == "openvino"
        assert "backend" not in on_torch.parameters.extras

        again = openvino_cache(folder)  # a new process's cache: the IR on disk is read back
        second = TextToImagePipeline(again, fast_decoder_presets)(request(tiny_sd, decoder=decoder))[0]
        assert again.converted.conversions == 0
        assert np.array_equal(pixels(second.image), pixels(on_openvino.image))
        torch_cache.clear()


@needs_openvino
def test_at_the_cpus_own_precision_the_image_stays_close_to_the_torch_paths(tiny_sd, presets, tmp_path):
    on_torch = TextToImagePipeline(ModelCache(resolve_device("cpu"), offline=True), presets)(
        request(tiny_sd, decoder="full")
    )[0]
    cache = openvino_cache(tmp_path, precision="auto")
    on_openvino = TextToImagePipeline(cache, presets)(request(tiny_sd, decoder="full"))[0]
    difference = np.abs(pixels(on_openvino.image) - pixels(on_torch.image))
    assert difference.mean() <= 3 and difference.max() <= 32, "fp16 weights, bf16 where the CPU has it"
    weights = next(tmp_path.glob("unet-*/model.bin")).stat().st_size
    exact = openvino_cache(tmp_path / "f32")
    TextToImagePipeline(exact, presets)(request(tiny_sd, decoder="full"))
    assert weights < 0.6 * next((tmp_path / "f32").glob("unet-*/model.bin")).stat().st_size, "half the bytes"


@needs_openvino
def test_what_openvino_cannot_run_whole_runs_on_torch(tiny_sd, presets, tmp_path):
    cache = openvino_cache(tmp_path)
    tiled = TextToImagePipeline(cache, presets)(request(tiny_sd, tile=True))[0]
    assert "backend" not in tiled.parameters.extras and cache.converted.conversions == 0


@needs_openvino
def test_the_torch_weights_openvino_stands_for_are_let_go_and_read_back_for_a_torch_run(
    tiny_sd, presets, tmp_path
):
    cache = openvino_cache(tmp_path)
    pipeline = TextToImagePipeline(cache, presets)
    pipeline(request(tiny_sd, decoder="full"))
    base = cache.base_model(resolve_model(str(tiny_sd), presets), released_ok=True)
    assert base.released == {"unet", "text_encoder"}, "one copy of each in the process: OpenVINO's"
    assert sum(p.numel() for p in base.components["unet"].parameters()) == 0

    tiled = pipeline(request(tiny_sd, tile=True, decoder="full"))[0]  # torch runs it: read back first
    assert not base.released and sum(p.numel() for p in base.components["unet"].parameters()) > 0
    on_torch = TextToImagePipeline(ModelCache(resolve_device("cpu"), offline=True), presets)
    plain = on_torch(request(tiny_sd, tile=True, decoder="full"))[0]
    assert np.array_equal(pixels(tiled.image), pixels(plain.image)), "the weights read back are the model's"

    pipeline(request(tiny_sd, decoder="full"))
    assert base.released == {"unet", "text_encoder"}, "let go again by the next OpenVINO run"
