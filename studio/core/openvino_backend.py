"""The CPU backend: a model's UNet, text encoder and decoders run by OpenVINO instead of torch.

On a CPU OpenVINO runs the UNet about 1.3× and the text encoder about 2.4× faster than torch, with the
same outputs to fp32 rounding (../shared/cpu-measurements.md). Each torch module is converted once per
model (`openvino.convert_model`, dynamic batch and size) and saved as OpenVINO IR under a folder named by
the module's identity (its model, component, weight files, precision and the OpenVINO version), so a
second start reads the IR instead of converting again; the compiled models live in the shared cache.

Precision: "auto" keeps the weights in fp16 and lets OpenVINO compute at the CPU's own best precision
(bf16 where it has AVX512-BF16 or AMX, f32 elsewhere): on this machine the SD-Turbo UNet then takes half
the memory (3.6 GiB at its peak instead of 6.9) and runs twice as fast, with pixels close to torch's but
not equal. "f32" gives torch's pixels to fp32 rounding (--backend torch gives them exactly).

The wrappers look to diffusers like the modules they stand for (config, dtype, device, the call), for
the calls this studio makes; what they cannot run (SDXL's added conditioning, ControlNet residuals, an
adapter, a seamless tile) the caller keeps on torch (pipelines/backends.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from studio.core.downloads import report_preparation

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1  # bump when what is converted, or how, changes: old IR is then converted again
CPU_CONFIG = {"PERFORMANCE_HINT": "LATENCY"}
PRECISIONS = ("auto", "f32")


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


class ConvertedModels:
    """OpenVINO IR on disk, converted once per module identity; compiled for the CPU on demand."""

    def __init__(self, folder: Path, precision: str = "auto") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.folder = Path(folder)
        self.precision = precision
        self.conversions = 0  # how many modules this process converted (not read back from disk)

    def identity(self, location: str, component: str, files: list[Path]) -> str:
        """A folder name for one converted module: what it was converted from, how, by which OpenVINO."""
        import openvino

        stamp = {
            "location": location,
            "component": component,
            "files": [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists()],
            "openvino": openvino.get_version(),
            "converter": CONVERTER_VERSION,
            "precision": self.precision,
        }
        digest = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16]
        return f"{component}-{digest}"

    def converted(
        self,
        name: str,
        module: torch.nn.Module,
        inputs: dict[str, tuple[torch.Tensor, list[int]]],
    ) -> Path:
        """The IR of `module` (whose forward takes `inputs`: an example each, and its shape, -1 where any
        size goes) saved under `name`: converted now when it is not on disk yet."""
        import openvino as ov

        path = self.folder / name / "model.xml"
        if not path.exists():
            report_preparation(
                f"Converting the {_component(name)} for OpenVINO (once per model; minutes on a CPU)…"
            )
            started = time.perf_counter()
            with torch.no_grad():
                model = ov.convert_model(
                    module.eval(),
                    example_input={key: example for key, (example, _) in inputs.items()},
                    input=[
                        (key, shape, ov.Type.f32 if example.is_floating_point() else ov.Type.i64)
                        for key, (example, shape) in inputs.items()
                    ],
                )
            for index, output in enumerate(model.outputs):
                output.get_tensor().set_names({f"output_{index}"})
            partial = path.with_suffix(".partial.xml")
            path.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(model, partial, compress_to_fp16=self.precision != "f32")
            partial.with_suffix(".bin").replace(path.with_suffix(".bin"))
            partial.replace(path)  # last: an interrupted conversion leaves no model.xml behind
            del model
            self.conversions += 1
            log.info("converted %s for OpenVINO in %.1fs", name, time.perf_counter() - started)
        return path

    def compile(self, path: Path) -> Any:
        """The IR compiled for the CPU. The compiled form is kept too (OpenVINO's model cache): a later
        start imports it instead of reading the IR and repacking its weights, which holds two copies."""
        import openvino as ov

        exact = {"INFERENCE_PRECISION_HINT": "f32"} if self.precision == "f32" else {}
        config = {**CPU_CONFIG, **exact, "CACHE_DIR": str(self.folder / "compiled")}
        report_preparation(f"Compiling the {_component(path.parent.name)} for the CPU…")
        return ov.Core().compile_model(path, "CPU", config)

    def weight_bytes(self, name: str) -> int:
        weights = self.folder / name / "model.bin"
        return weights.stat().st_size if weights.exists() else 0


def _component(name: str) -> str:
    """What a converted folder holds, in words: "unet-1f2e…" is "unet", "text_encoder-…" "text encoder"."""
    return name.rsplit("-", 1)[0].replace("_", " ")


def run(compiled: Any, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    result = compiled({key: value.detach().float().numpy() if value.is_floating_point() else
                       value.detach().numpy() for key, value in inputs.items()})  # fmt: skip
    return [torch.from_numpy(result[index].copy()) for index in range(len(compiled.outputs))]


class _Standing(torch.nn.Module):
    """What every wrapper shows diffusers: the config, dtype and device of the torch module it stands
    for (on the CPU, fp32), with no parameters of its own."""

    def __init__(self, original: Any, compiled: Any) -> None:
        super().__init__()
        self.config = original.config
        self.compiled = compiled

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


class UNetForward(torch.nn.Module):
    def __init__(self, unet: Any) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):  # noqa: ANN001 (traced)
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class OpenVinoUNet(_Standing):
    traced = UNetForward

    def forward(self, sample, timestep, encoder_hidden_states, **unused: Any) -> tuple[torch.Tensor]:
        timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(())
        inputs = {"sample": sample, "timestep": timestep, "encoder_hidden_states": encoder_hidden_states}
        return (run(self.compiled, inputs)[0],)


class TextEncoderForward(torch.nn.Module):
    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids):  # noqa: ANN001 (traced)
        output = self.encoder(input_ids, return_dict=False)
        return output[0], output[1]


class OpenVinoTextEncoder(_Standing):
    """The last hidden state and the pooled output, which is what SD 1.x/2.x prompts are encoded to."""

    traced = TextEncoderForward

    def forward(self, input_ids, attention_mask=None, *, output_hidden_states=False, return_dict=True, **_):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        if output_hidden_states:
            raise NotImplementedError("hidden states are not converted")
        last, pooled = run(self.compiled, {"input_ids": input_ids.long()})
        if not return_dict:
            return last, pooled
        return BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=pooled)


class DecoderForward(torch.nn.Module):
    def __init__(self, autoencoder: Any) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, latents):  # noqa: ANN001 (traced)
        return self.autoencoder.decode(latents, return_dict=False)[0]


class OpenVinoDecoder(_Standing):
    """An autoencoder whose decode OpenVINO runs (its encode, which text to image never calls, stays out)."""

    traced = DecoderForward

    def decode(self, latents: torch.Tensor, return_dict: bool = True, **unused: Any) -> Any:
        from diffusers.models.autoencoders.vae import DecoderOutput

        sample = run(self.compiled, {"latents": latents})[0]
        return DecoderOutput(sample=sample) if return_dict else (sample,)


def choose_backend(setting: str, device_config: Any, *, installed: bool) -> tuple[str, str | None]:
    """The backend diffusion runs on ("auto", "torch" or "openvino" asked), and a one-line notice when it
    is not the one asked for: OpenVINO where the models compute on a CPU and it is installed."""
    if setting == "torch":
        return "torch", None
    if device_config.is_accelerator:
        notice = "OpenVINO is a CPU backend; this machine computes on its GPU, with torch."
        return "torch", notice if setting == "openvino" else None
    if installed:
        return "openvino", None
    notice = 'OpenVINO is not installed (pip install -e ".[openvino]"): torch runs every model.'
    return "torch", notice if setting == "openvino" else None
