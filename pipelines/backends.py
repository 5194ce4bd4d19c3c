"""Which backend runs a diffusion call: torch, or on a CPU OpenVINO (studio/core/openvino_backend.py).

OpenVINO runs a text-to-image call of an SD 1.x/2.x model whole: the text encoder, the UNet and the
decoder (the VAE's, or TAESD's). A call it cannot run whole (SDXL, an input image, LoRAs, a seamless tile,
ControlNets and IP-Adapters) runs on torch, with a one-line notice in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from studio.core.cache import BaseModel, CacheKey, Lease
from studio.core.openvino_backend import (
    ConvertedModels,
    OpenVinoDecoder,
    OpenVinoTextEncoder,
    OpenVinoUNet,
)

log = logging.getLogger(__name__)

RELEASED = ("text_encoder", "unet")  # the base model's components OpenVINO stands for (the VAE encodes)


def openvino_refusal(task: str, base: BaseModel, request: Any, image_prompts: bool = False) -> str | None:
    """Why OpenVINO cannot run this call whole (None: it can)."""
    if base.family != "sd":
        return "SDXL's added conditioning is not converted"
    if task != "txt2img":
        return f"{task} is not converted (text to image is)"
    if image_prompts:
        return "image prompts swap IP-Adapters into the UNet"
    if request.loras:
        return "LoRAs change the UNet's weights"
    if request.tile:
        return "a seamless tile changes the convolutions' padding"
    return None


def _weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def use_openvino(lease: Lease, base: BaseModel, pipe: Any, converted: ConvertedModels) -> None:
    """Swap `pipe`'s text encoder, UNet and decoder for OpenVINO's, each converted on first use (the IR
    kept on disk) and compiled once into the shared cache, where it is dropped with its base model. The
    base model's torch UNet and text encoder let their weights go meanwhile (no run holding them), so
    the process holds one copy of each; a run on torch reads them back (`Lease.base_model`)."""
    location = base.source.location
    unet, encoder, autoencoder = pipe.unet, pipe.text_encoder, pipe.vae
    side, tokens = int(unet.config.sample_size), int(pipe.tokenizer.model_max_length)
    channels, cross = int(unet.config.in_channels), int(unet.config.cross_attention_dim)
    latent = int(autoencoder.config.latent_channels)

    def swapped(wrapper: type, module: Any, component: str, source: str, folder: Path, inputs: dict) -> Any:
        """The compiled stand-in for one module, sized in the cache by its IR's weights."""
        name = converted.identity(source, component, _weight_files(folder))
        key = CacheKey(source, f"openvino {component}", "float32", variant=name)

        def load() -> Any:
            path = converted.converted(name, wrapper.traced(module), inputs)
            release(component)  # before OpenVINO reads its own copy in: one copy at a time
            return wrapper(module, converted.compile(path))

        size = lambda value: converted.weight_bytes(name)  # noqa: E731
        return lease.model(key, load, module=lambda value: None, nbytes=size, part_of=base)

    def release(component: str) -> None:
        if component in RELEASED and component not in base.released:
            lease.let_go_weights(base, component)

    # Each input: an example for tracing, and its shape (-1: any batch, any size).
    pipe.text_encoder = swapped(
        OpenVinoTextEncoder, encoder, "text_encoder", location, Path(location) / "text_encoder",
        {"input_ids": (torch.zeros(1, tokens, dtype=torch.long), [-1, tokens])},
    )  # fmt: skip
    pipe.unet = swapped(
        OpenVinoUNet, unet, "unet", location, Path(location) / "unet",
        {
            "sample": (torch.randn(1, channels, side, side), [-1, channels, -1, -1]),
            "timestep": (torch.tensor(999.0), []),
            "encoder_hidden_states": (torch.randn(1, tokens, cross), [-1, tokens, cross]),
        },
    )  # fmt: skip
    tiny = type(autoencoder).__name__ == "AutoencoderTiny"  # TAESD, the fast decoder: its own folder
    source = str(getattr(autoencoder.config, "_name_or_path", "") or location) if tiny else location
    pipe.vae = swapped(
        OpenVinoDecoder, autoencoder, "taesd_decoder" if tiny else "vae_decoder", source,
        Path(source) if tiny else Path(location) / "vae",
        {"latents": (torch.randn(1, latent, side, side), [-1, latent, -1, -1])},
    )  # fmt: skip
    for component in RELEASED:  # a torch run since the first may have read them back
        release(component)
