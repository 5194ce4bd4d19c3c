"""Which device and precision the studio computes on, and which attention kernel it uses."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from studio.core.errors import InvalidRequest

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Weight-only quantization of a transformer family's denoiser, to fit a smaller GPU: the library each needs,
# and whether it needs CUDA (fp8's kernels are Ada's and Hopper's; bitsandbytes' NF4 is CUDA's)
QUANTIZATIONS = {"none": (None, False), "int8": ("torchao", False), "fp8": ("torchao", True),
                 "nf4": ("bitsandbytes", True)}  # fmt: skip


@dataclass(frozen=True)
class DeviceConfig:
    device: torch.device
    dtype: torch.dtype
    attention: str  # "sdpa" (PyTorch scaled dot-product attention) or "xformers"
    quantize: str = "none"  # a key of QUANTIZATIONS

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def is_accelerator(self) -> bool:
        return self.device.type in {"cuda", "mps"}

    def describe(self) -> str:
        name = str(self.device)
        if self.device.type == "cuda":
            name = f"{name} ({torch.cuda.get_device_name(self.device)})"
        weights = "" if self.quantize == "none" else f", {self.quantize} transformer weights"
        return f"{name}, {self.dtype_name}{weights}, attention: {self.attention}"


def _pick_device(requested: str) -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise InvalidRequest(f"Unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps.") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidRequest("CUDA was requested but no CUDA GPU is visible to PyTorch.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidRequest("MPS was requested but this PyTorch build or machine has no MPS.")
    if device.type not in {"cpu", "cuda", "mps"}:
        raise InvalidRequest(f"Unsupported device {requested!r}: use auto, cpu, cuda, cuda:N or mps.")
    return device


def _pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested == "auto":
        # Half precision halves memory and is the norm on GPUs; CPUs run float32 far better.
        return torch.float16 if device.type in {"cuda", "mps"} else torch.float32
    if requested not in DTYPES:
        raise InvalidRequest(f"Unknown dtype {requested!r}: use auto, float32, float16 or bfloat16.")
    return DTYPES[requested]


def xformers_available() -> bool:
    return importlib.util.find_spec("xformers") is not None


def _check_quantize(quantize: str, device: torch.device) -> str:
    if quantize not in QUANTIZATIONS:
        raise InvalidRequest(f"Unknown quantization {quantize!r}: use {', '.join(QUANTIZATIONS)}.")
    library, needs_cuda = QUANTIZATIONS[quantize]
    if needs_cuda and device.type != "cuda":
        raise InvalidRequest(f"--quantize {quantize} needs a CUDA GPU; on this device use int8 or none.")
    if library and importlib.util.find_spec(library) is None:
        raise InvalidRequest(f"--quantize {quantize} needs {library}: pip install {library}")
    return quantize


def resolve_device(device: str = "auto", dtype: str = "auto", quantize: str = "none") -> DeviceConfig:
    torch_device = _pick_device(device)
    torch_dtype = _pick_dtype(dtype, torch_device)
    # SDPA is PyTorch's fused attention and diffusers' default; xformers only helps on CUDA.
    attention = "xformers" if torch_device.type == "cuda" and xformers_available() else "sdpa"
    return DeviceConfig(torch_device, torch_dtype, attention, _check_quantize(quantize, torch_device))
