"""The CPU backend: a model's UNet, text encoders and autoencoder run by OpenVINO instead of torch.

On a CPU OpenVINO runs the UNet about 1.3× and the text encoder about 2.4× faster than torch, with the
same outputs to fp32 rounding (../shared/cpu-measurements.md). Each torch module is converted once per
model (`openvino.convert_model`, dynamic batch, size and prompt length) and saved as OpenVINO IR under a
folder named by the module's identity (its model, component, weight files, variant, precision and
OpenVINO's version), so a second start reads the IR instead of converting again; the compiled models live
in the shared cache.

Precision: "auto" keeps the weights in fp16 and lets OpenVINO compute at the CPU's own best precision
(bf16 where it has AVX512-BF16 or AMX, f32 elsewhere): on this machine the SD-Turbo UNet then takes half
the memory (3.6 GiB at its peak instead of 6.9) and runs twice as fast, with pixels close to torch's but
not equal. "f32" gives torch's pixels to fp32 rounding (--backend torch gives them exactly).

The wrappers look to diffusers like the modules they stand for (config, dtype, device, the call), for
the calls this studio makes; what they cannot run (ControlNet residuals, IP-Adapters' layers) the caller
keeps on torch (pipelines/parts/backends.py), which also converts a run's variant (a tile, LoRAs) of each.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from studio.core.downloads import report_preparation
from studio.core.models import ONE_LOAD_AT_A_TIME

log = logging.getLogger(__name__)

CONVERTER_VERSION = 2  # bump when what is converted, or how, changes: old IR is then converted again
CPU_CONFIG = {"PERFORMANCE_HINT": "LATENCY"}
PRECISIONS = ("auto", "f32")


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


@functools.cache
def openvino() -> Any:
    """The `openvino` module, imported with its converter's telemetry declined.

    Unless the machine's user opted out, OpenVINO reports its import and each conversion to Google
    Analytics: a studio converts on its visitors' behalf and reports nothing of theirs (offline, each report
    also cost about 0.2 s of CPU building TLS contexts for nowhere). Its one switch in code is the one it
    keeps for automated runs, read when the converter first asks for consent: both happen here.
    """
    flagged = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        import openvino
        from openvino.tools.ovc.telemetry_utils import init_ovc_telemetry

        init_ovc_telemetry()  # conversions reuse this consent while their app name stays the same
    finally:
        if flagged is None:
            del os.environ["CI"]
        else:
            os.environ["CI"] = flagged
    return openvino


# -- torch weights let go while OpenVINO runs a component ------------------------------------------------
# One copy of each weight in the process: the torch module keeps its config, buffers and identity (the
# cache's key), its parameters emptied, and reads them back from the model's files when torch runs it again.


def can_let_go(module: Any, source_kind: str) -> bool:
    """Whether a component's torch weights can be read back after being let go: from a folder or the hub
    cache, not from inside a single-file checkpoint."""
    return source_kind != "file" and isinstance(module, torch.nn.Module)


def let_go(module: torch.nn.Module) -> None:
    for parameter_name, parameter in module.named_parameters():
        if not _is_adapter(parameter_name):  # a LoRA's own weights are not in the model's files
            parameter.data = torch.empty(0, dtype=parameter.dtype, device=parameter.device)


def read_back(module: torch.nn.Module, location: str, subfolder: str, *, from_hub: bool) -> None:
    """Read a let-go component's weights back into the very same module, through the library's own loading
    (weight names, variants), from the model's folder or the hub cache (where it was loaded from)."""
    dtype = next((parameter.dtype for parameter in module.parameters()), torch.float32)
    options: dict[str, Any] = {"subfolder": subfolder, "dtype": dtype}
    if from_hub:
        options["local_files_only"] = True
    with ONE_LOAD_AT_A_TIME:
        fresh = dict(type(module).from_pretrained(location, **options).named_parameters())
    for parameter_name, parameter in module.named_parameters():
        if not _is_adapter(parameter_name):  # a LoRA wraps the layer it adapts as `base_layer`
            parameter.data = fresh[parameter_name.replace(".base_layer.", ".")].data.to(parameter.device)


def _is_adapter(parameter_name: str) -> bool:
    return ".lora_" in parameter_name


class ConvertedModels:
    """OpenVINO IR on disk, converted once per module identity; compiled for the CPU on demand."""

    def __init__(self, folder: Path, precision: str = "auto") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.folder = Path(folder)
        self.precision = precision
        self.conversions = 0  # how many modules this process converted (not read back from disk)

    def identity(
        self, location: str, component: str, files: list[Path], variant: dict[str, Any] | None = None
    ) -> str:
        """A folder name for one converted module: what it was converted from (the `variant` of it: a
        seamless tile, LoRAs fused in), how, by which OpenVINO."""
        stamp = {
            "variant": variant or {},
            "location": location,
            "component": component,
            "files": [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists()],
            "openvino": openvino().get_version(),
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
        ov = openvino()
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
        ov = openvino()
        exact = {"INFERENCE_PRECISION_HINT": "f32"} if self.precision == "f32" else {}
        config = {**CPU_CONFIG, **exact, "CACHE_DIR": str(self.folder / "compiled")}
        report_preparation(f"Compiling the {_component(path.parent.name)} for the CPU…")
        return ov.Core().compile_model(path, "CPU", config)

    def on_disk(self, name: str) -> bool:
        return (self.folder / name / "model.xml").exists()

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


class UNetWithAddedConditionForward(UNetForward):
    """SDXL's UNet, which also takes the pooled text embedding and the size-and-crop time ids."""

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):  # noqa: ANN001
        added = {"text_embeds": text_embeds, "time_ids": time_ids}
        return self.unet(sample, timestep, encoder_hidden_states, added_cond_kwargs=added, return_dict=False)[
            0
        ]


class OpenVinoUNet(_Standing):
    """Any prompt length (compel's chunked embeddings are 77 tokens a chunk), batch and size; the LoRAs
    and seamless padding of the run are part of the converted graph (pipelines/parts/backends.py)."""

    def __init__(self, original: Any, compiled: Any) -> None:
        super().__init__(original, compiled)
        if original.config.addition_embed_type == "text_time":  # SDXL's pipelines check its width
            width = original.add_embedding.linear_1.in_features
            self.add_embedding = SimpleNamespace(linear_1=SimpleNamespace(in_features=width))

    def forward(
        self, sample, timestep, encoder_hidden_states, added_cond_kwargs=None, **unused: Any
    ) -> tuple[torch.Tensor]:
        timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(())
        inputs = {"sample": sample, "timestep": timestep, "encoder_hidden_states": encoder_hidden_states}
        if added_cond_kwargs:
            inputs.update(
                text_embeds=added_cond_kwargs["text_embeds"], time_ids=added_cond_kwargs["time_ids"]
            )
        return (run(self.compiled, inputs)[0],)


def unet_inputs(unet: Any, text_embeds: int | None) -> dict[str, tuple[torch.Tensor, list[int]]]:
    """The UNet's inputs for conversion: an example each and its shape (-1: any batch, size or prompt
    length); SDXL's added conditioning where `text_embeds` (the pooled embedding's width) is given."""
    channels, side = int(unet.config.in_channels), int(unet.config.sample_size)
    cross = int(unet.config.cross_attention_dim)
    inputs = {
        "sample": (torch.randn(1, channels, side, side), [-1, channels, -1, -1]),
        "timestep": (torch.tensor(999.0), []),
        "encoder_hidden_states": (torch.randn(1, 77, cross), [-1, -1, cross]),
    }
    if text_embeds is not None:
        time_ids = (int(unet.config.projection_class_embeddings_input_dim) - text_embeds) // int(
            unet.config.addition_time_embed_dim
        )
        inputs["text_embeds"] = (torch.randn(1, text_embeds), [-1, text_embeds])
        inputs["time_ids"] = (torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0][:time_ids]]), [-1, time_ids])
    return inputs


class TextEncoderForward(torch.nn.Module):
    """CLIP's last hidden state, its pooled output (or, with a projection, its text embedding) and the
    penultimate hidden state, which SDXL's prompts are encoded to."""

    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids):  # noqa: ANN001 (traced)
        output = self.encoder(input_ids, output_hidden_states=True, return_dict=True)
        pooled = output.text_embeds if "text_embeds" in output else output.pooler_output
        return output.last_hidden_state, pooled, output.hidden_states[-2]


class OpenVinoTextEncoder(_Standing):
    def __init__(self, original: Any, compiled: Any) -> None:
        super().__init__(original, compiled)
        self.projected = type(original).__name__ == "CLIPTextModelWithProjection"  # SDXL's second

    def forward(self, input_ids, attention_mask=None, *, output_hidden_states=False, return_dict=True, **_):
        from transformers.modeling_outputs import BaseModelOutputWithPooling
        from transformers.models.clip.modeling_clip import CLIPTextModelOutput

        last, pooled, penultimate = run(self.compiled, {"input_ids": input_ids.long()})
        hidden_states = (penultimate, last) if output_hidden_states else None  # [-2]: the penultimate
        if self.projected:
            output = CLIPTextModelOutput(
                text_embeds=pooled, last_hidden_state=last, hidden_states=hidden_states
            )
        else:
            output = BaseModelOutputWithPooling(
                last_hidden_state=last, pooler_output=pooled, hidden_states=hidden_states
            )
        return output if return_dict else output.to_tuple()


def text_encoder_inputs(tokens: int) -> dict[str, tuple[torch.Tensor, list[int]]]:
    return {"input_ids": (torch.zeros(1, tokens, dtype=torch.long), [-1, tokens])}


class DecoderForward(torch.nn.Module):
    def __init__(self, autoencoder: Any) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, latents):  # noqa: ANN001 (traced)
        return self.autoencoder.decode(latents, return_dict=False)[0]


class EncoderForward(DecoderForward):
    """The VAE's latent distribution (mean and log-variance, which the caller samples with its own
    generator, as diffusers does), or a tiny autoencoder's latents."""

    def forward(self, image):  # noqa: ANN001 (traced)
        encoded = self.autoencoder.encode(image)
        return encoded.latents if hasattr(encoded, "latents") else encoded.latent_dist.parameters


class OpenVinoAutoencoder(_Standing):
    """An autoencoder whose decode (and, for a task that starts from an image, encode) OpenVINO runs."""

    def __init__(self, original: Any, decoder: Any, encoder: Any | None = None) -> None:
        super().__init__(original, decoder)
        self.encoder_compiled = encoder
        self.tiny = type(original).__name__ == "AutoencoderTiny"

    def decode(self, latents: torch.Tensor, return_dict: bool = True, **unused: Any) -> Any:
        from diffusers.models.autoencoders.vae import DecoderOutput

        sample = run(self.compiled, {"latents": latents})[0]
        return DecoderOutput(sample=sample) if return_dict else (sample,)

    def encode(self, image: torch.Tensor, return_dict: bool = True) -> Any:
        from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKLOutput
        from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTinyOutput
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        if self.encoder_compiled is None:
            raise RuntimeError("this run's autoencoder was converted to decode only")
        encoded = run(self.encoder_compiled, {"image": image})[0]
        if self.tiny:
            output = AutoencoderTinyOutput(latents=encoded)
        else:
            output = AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(encoded))
        return output if return_dict else output.to_tuple()


def autoencoder_inputs(autoencoder: Any, side: int, scale: int) -> dict[str, dict[str, Any]]:
    """The decoder's and the encoder's inputs for conversion: latents of `side`, pixels `scale` times it."""
    latent = int(autoencoder.config.latent_channels)
    return {
        "decoder": {"latents": (torch.randn(1, latent, side, side), [-1, latent, -1, -1])},
        "encoder": {"image": (torch.randn(1, 3, side * scale, side * scale), [-1, 3, -1, -1])},
    }


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
    notice = "OpenVINO is not installed (pip install openvino, where it has wheels): torch runs every model."
    return "torch", notice if setting == "openvino" else None
