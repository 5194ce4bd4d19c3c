"""The extra models of diffusion style transfer: ControlNets, IP-Adapters and structure detectors.

They load through the same offline-aware path as base models (`load_weights`) and live in the shared cache
as entries of their own. An IP-Adapter is never installed into the shared UNet for good: `ip_adapter_applied`
swaps its attention processors in for one denoising call, under the GPU lock, and restores the UNet after,
so every other task keeps seeing the plain model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from studio.core.devices import DeviceConfig
from studio.core.models import load_weights, weights_source
from studio.core.presets import ControlNetPreset, IPAdapterPreset

PRESETS_HINT = "or set a local folder as its source in presets/{file} (--presets to use another folder)."


def load_controlnet(preset: ControlNetPreset, device_config: DeviceConfig, *, offline: bool) -> Any:
    from diffusers import ControlNetModel

    source = weights_source(f"ControlNet {preset.name!r}", preset.source)

    def load(local_only: bool) -> Any:
        options: dict[str, Any] = {"dtype": device_config.dtype}
        if source.kind == "hub":
            options["local_files_only"] = local_only
        return ControlNetModel.from_pretrained(source.location, **options)

    # In RAM: the model cache brings it to the GPU when its budget holds it.
    return load_weights(source, offline, load, PRESETS_HINT.format(file="controlnets.json"))


@dataclass
class IPAdapter:
    """An IP-Adapter ready to be applied to UNets of its architecture."""

    preset: IPAdapterPreset
    processors: dict[
        str, Any
    ]  # attention processor by UNet processor name, IP-Adapter ones on cross-attention
    projection: torch.nn.Module  # image embedding -> extra cross-attention tokens
    image_encoder: Any  # CLIPVisionModelWithProjection
    feature_extractor: Any  # CLIPImageProcessor at the encoder's input size
    weights: torch.nn.ModuleList  # every module above that holds weights, for sizes and devices


def _split_state_dict(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """An IP-Adapter .safetensors file, split into the two halves diffusers' converters take."""
    from safetensors import safe_open

    state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    with safe_open(str(path), framework="pt", device="cpu") as weights:
        for key in weights.keys():  # noqa: SIM118 (safe_open is not a dict)
            part, _, name = key.partition(".")
            if part in state:
                state[part][name] = weights.get_tensor(key)
    if not state["image_proj"] or not state["ip_adapter"]:
        raise ValueError(f"{path.name} has no image_proj/ip_adapter weights: it is not an IP-Adapter")
    return state


def load_ip_adapter(
    preset: IPAdapterPreset, unet: Any, device_config: DeviceConfig, *, offline: bool
) -> IPAdapter:
    """The IP-Adapter of `preset`, its processors built for UNets shaped like `unet` (left untouched)."""
    from diffusers.models.embeddings import MultiIPAdapterImageProjection
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    source = weights_source(f"IP-Adapter {preset.name!r}", preset.source)

    def load(local_only: bool) -> tuple[dict[str, dict[str, torch.Tensor]], Any]:
        if source.kind == "folder":
            weight_file = Path(source.location) / preset.weight
            if not weight_file.is_file():
                raise FileNotFoundError(f"{weight_file} does not exist")
        else:
            from huggingface_hub import hf_hub_download

            weight_file = Path(hf_hub_download(preset.source, preset.weight, local_files_only=local_only))
        encoder = CLIPVisionModelWithProjection.from_pretrained(
            source.location,
            subfolder=preset.image_encoder,
            dtype=device_config.dtype,
            local_files_only=local_only or source.kind == "folder",
        )
        return _split_state_dict(weight_file), encoder

    state, encoder = load_weights(source, offline, load, PRESETS_HINT.format(file="ip_adapters.json"))
    processors = unet._convert_ip_adapter_attn_to_diffusers([state], low_cpu_mem_usage=False)
    projection = MultiIPAdapterImageProjection(
        [unet._convert_ip_adapter_image_proj_to_diffusers(state["image_proj"], low_cpu_mem_usage=False)]
    )
    weighted = [p for p in processors.values() if isinstance(p, torch.nn.Module)]
    weights = torch.nn.ModuleList([projection, encoder, *weighted])
    weights.to(dtype=device_config.dtype)  # in RAM: the model cache brings it to the GPU when it fits
    size = encoder.config.image_size
    return IPAdapter(
        preset=preset,
        processors=processors,
        projection=projection,
        image_encoder=encoder,
        feature_extractor=CLIPImageProcessor(size=size, crop_size=size),
        weights=weights,
    )


@contextmanager
def ip_adapter_applied(
    unet: Any, adapter: IPAdapter, style_scale: float, device: torch.device | None = None
) -> Iterator[None]:
    """`unet` with `adapter` installed, the reference image reaching its style blocks only, then restored.

    Call under the GPU lock: the UNet is shared with every other task. `device` is where the UNet computes:
    the adapter's layers go there, since offload hooks put on the UNet earlier do not move them.
    """
    if device is not None:
        adapter.projection.to(device)
        for processor in adapter.processors.values():
            if isinstance(processor, torch.nn.Module):
                processor.to(device)
    original_processors = unet.attn_processors
    original_projection = unet.encoder_hid_proj
    original_hid_type = unet.config.encoder_hid_dim_type
    for name, processor in adapter.processors.items():
        if hasattr(processor, "scale"):
            in_style_block = name.startswith(adapter.preset.style_blocks)
            processor.scale = [style_scale if in_style_block else 0.0]
    unet.set_attn_processor(dict(adapter.processors))  # set_attn_processor empties the dict it is given
    unet.encoder_hid_proj = adapter.projection
    unet.config.encoder_hid_dim_type = "ip_image_proj"
    try:
        yield
    finally:
        unet.set_attn_processor(original_processors)
        unet.encoder_hid_proj = original_projection
        unet.config.encoder_hid_dim_type = original_hid_type


# -- structure detectors -----------------------------------------------------------------------------------

DETECTORS = {  # structure -> (controlnet_aux module, class) of the detectors that need weights
    "softedge": ("controlnet_aux.hed", "HEDdetector"),
    "lineart": ("controlnet_aux.lineart", "LineartDetector"),
    "depth": ("controlnet_aux.midas", "MidasDetector"),
}


def controlnet_aux_class(module_name: str, class_name: str) -> type:
    """A class from controlnet-aux, whose package import warns about optional extras we do not use."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(importlib.import_module(module_name), class_name)


def load_detector(structure: str, location: str, device_config: DeviceConfig, *, offline: bool) -> Any:
    """A controlnet-aux detector for `structure` with its weights from `location` (hub id or folder)."""
    detector_class = controlnet_aux_class(*DETECTORS[structure])
    source = weights_source(f"The {structure} detector's weights", location)

    def load(local_only: bool) -> Any:  # a folder path is read directly; local_files_only is for the hub
        return detector_class.from_pretrained(source.location, local_files_only=local_only)

    hint = "or set a local copy of that repository as 'annotators' in presets/controlnets.json."
    return load_weights(source, offline, load, hint)  # in RAM: the cache moves it to the device


def detector_module(detector: Any) -> torch.nn.Module:
    """The torch modules inside a controlnet-aux detector, for its size and device."""
    return torch.nn.ModuleList(v for v in vars(detector).values() if isinstance(v, torch.nn.Module))
