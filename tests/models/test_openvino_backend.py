"""The OpenVINO CPU backend on the tiny models: the torch path's pixels, IR kept on disk, torch fallback."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import skimage.data
from PIL import Image

from pipelines.image_to_image import ImageToImagePipeline, ImageToImageRequest
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.downloads import preparation_reported_to
from studio.core.models import resolve_model
from studio.core.openvino_backend import ConvertedModels, choose_backend, openvino_installed
from studio.core.requests import parse_request
from tests.tiny_models import build_lora

needs_openvino = pytest.mark.skipif(not openvino_installed(), reason="the openvino extra is not installed")


def request(model, request_type=TextToImageRequest, **values):
    values = {"prompt": "a red fox in the snow", "model": str(model), "steps": 3, "seed": 42, **values}
    return parse_request(request_type, values)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def openvino_cache(folder, precision: str = "f32", **options) -> ModelCache:
    converted = ConvertedModels(folder, precision)
    return ModelCache(resolve_device("cpu"), offline=True, backend="openvino", converted=converted, **options)


def test_auto_is_openvino_on_a_cpu_where_it_is_installed_and_torch_elsewhere():
    cpu = resolve_device("cpu")
    assert choose_backend("torch", cpu, installed=True) == ("torch", None)
    assert choose_backend("auto", cpu, installed=True) == ("openvino", None)
    assert choose_backend("auto", cpu, installed=False) == ("torch", None)
    backend, notice = choose_backend("openvino", cpu, installed=False)
    assert backend == "torch" and "pip install openvino" in notice


CONVERT_IN_A_FRESH_PROCESS = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from studio.core.openvino_backend import ConvertedModels
    converted = ConvertedModels(Path(sys.argv[1]))
    example = torch.ones(1, 4)
    path = converted.converted("linear-x", torch.nn.Linear(4, 2), {"input": (example, [-1, 4])})
    print(converted.compile(path)(example.numpy())[0].shape)
""")


@needs_openvino
def test_converting_reports_nothing_to_openvinos_telemetry(tmp_path):
    """OpenVINO reports imports and conversions to Google Analytics unless told not to, and keeps a client
    id and counts in ~/intel to do it: the studio declines, so a fresh home stays empty."""
    home = tmp_path / "home"
    home.mkdir()
    environment = {key: value for key, value in os.environ.items() if key != "CI"} | {"HOME": str(home)}
    script = [sys.executable, "-c", CONVERT_IN_A_FRESH_PROCESS, str(tmp_path / "converted")]
    done = subprocess.run(script, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 2)"
    assert not list(home.rglob("*")), "nothing written for telemetry"


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
def test_a_tile_and_loras_are_converted_variants_that_give_torchs_pixels(tiny_sd, presets, tmp_path):
    folder = tmp_path / "loras"
    build_lora(tiny_sd, folder / "ink.safetensors", seed=4, text_encoders=True)
    on_torch = ModelCache(resolve_device("cpu"), offline=True)
    cache = openvino_cache(tmp_path / "ir")
    variants = [{}, {"tile": True}, {"loras": ["ink:0.7"]}, {"loras": ["ink:0.7"], "tile": True}]
    made = []
    for variant in variants:
        torch_image = TextToImagePipeline(on_torch, presets, loras_dir=folder)(
            request(tiny_sd, decoder="full", **variant)
        )[0]
        image = TextToImagePipeline(cache, presets, loras_dir=folder)(
            request(tiny_sd, decoder="full", **variant)
        )[0]
        assert image.parameters.extras["backend"] == "openvino", variant
        assert np.abs(pixels(image.image) - pixels(torch_image.image)).max() <= 2, (
            f"{variant}: torch's pixels"
        )
        made.append(pixels(image.image))
    for index, image in enumerate(made):  # each variant is its own image: nothing fell back to the plain IR
        assert all(not np.array_equal(image, other) for other in made[index + 1 :])
    names = sorted(path.name.rsplit("-", 1)[0] for path in (tmp_path / "ir").glob("*-*"))
    # UNets plain, tiled, with the LoRA and both; text encoders plain and with it; decoders plain and tiled
    assert names.count("unet") == 4 and names.count("text_encoder") == 2 and names.count("vae_decoder") == 2
    on_torch.clear()


@needs_openvino
def test_image_to_image_encodes_with_openvino_and_a_long_prompt_costs_one_more_chunk(
    tiny_sd, presets, tmp_path
):
    photo = Image.fromarray(skimage.data.astronaut()).resize((96, 64), Image.Resampling.LANCZOS)
    values = {"image": photo, "strength": 0.6, "decoder": "full", "prompt": "a lighthouse, " * 20}
    on_torch = ImageToImagePipeline(ModelCache(resolve_device("cpu"), offline=True), presets)
    cache = openvino_cache(tmp_path)
    expected = on_torch(request(tiny_sd, ImageToImageRequest, **values))[0]
    image = ImageToImagePipeline(cache, presets)(request(tiny_sd, ImageToImageRequest, **values))[0]
    assert image.parameters.extras["backend"] == "openvino"
    assert {path.name.rsplit("-", 1)[0] for path in tmp_path.glob("*-*")} >= {"vae_encoder", "vae_decoder"}
    assert np.abs(pixels(image.image) - pixels(expected.image)).max() <= 2


@needs_openvino
def test_the_torch_weights_openvino_stands_for_are_let_go_and_read_back_for_a_torch_run(
    tiny_sd, tiny_presets, tmp_path
):
    cache = openvino_cache(tmp_path)
    pipeline = TextToImagePipeline(cache, tiny_presets)
    pipeline(request(tiny_sd, decoder="full"))
    base = cache.load_base_model(resolve_model(str(tiny_sd), tiny_presets), released_ok=True)
    assert base.released == {"unet", "text_encoder"}, "one copy of each in the process: OpenVINO's"
    assert sum(p.numel() for p in base.components["unet"].parameters()) == 0

    # A style image adds IP-Adapter layers to the UNet: torch runs it, weights read back first
    styled = {"style_images": (Image.new("RGB", (64, 64), "orange"),), "decoder": "full"}
    on_openvino = pipeline(request(tiny_sd, **styled))[0]
    assert on_openvino.parameters.extras["backend"] == "torch"
    assert "Backend: torch" in on_openvino.parameters.to_text()
    assert not base.released and sum(p.numel() for p in base.components["unet"].parameters()) > 0
    on_torch = TextToImagePipeline(ModelCache(resolve_device("cpu"), offline=True), tiny_presets)
    plain = on_torch(request(tiny_sd, **styled))[0]
    assert np.array_equal(pixels(on_openvino.image), pixels(plain.image)), (
        "the weights read back are the model's"
    )

    pipeline(request(tiny_sd, decoder="full"))
    assert base.released == {"unet", "text_encoder"}, "let go again by the next OpenVINO run"
