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
    DecoderForward,
    OpenVinoDecoder,
    OpenVinoTextEncoder,
    OpenVinoUNet,
    TextEncoderForward,
    UNetForward,
    identity,
)

log = logging.getLogger(__name__)


def openvino_refusal(task: str, base: BaseModel, request: Any, pipe: Any) -> str | None:
    """Why OpenVINO cannot run this call whole (None: it can)."""
    if base.family != "sd":
        return "SDXL's added conditioning is not converted"
    if task != "txt2img" or getattr(pipe, "controlnet", None) is not None:
        return f"{task} is not converted (text to image is)"
    if request.loras:
        return "LoRAs change the UNet's weights"
    if request.tile:
        return "a seamless tile changes the convolutions' padding"
    return None


def _weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def use_openvino(lease: Lease, base: BaseModel, pipe: Any, converted: ConvertedModels) -> None:
    """Swap `pipe`'s text encoder, UNet and decoder for OpenVINO's, each converted on first use (the IR
    kept on disk) and compiled once into the shared cache, where it is dropped with its base model."""
    location = base.source.location
    unet, encoder, autoencoder = pipe.unet, pipe.text_encoder, pipe.vae
    width = int(unet.config.sample_size)
    tokens = int(pipe.tokenizer.model_max_length)

    def fetch(component: str, source: str, files: list[Path], make: Any) -> Any:
        """The compiled wrapper of one module, sized in the cache by its IR's weights."""
        name = identity(source, component, files)
        key = CacheKey(source, f"openvino {component}", "float32", variant=name)
        size = lambda value: converted.weight_bytes(name)  # noqa: E731
        return lease.model(key, lambda: make(name), module=lambda value: None, part_of=base, nbytes=size)

    pipe.text_encoder = fetch(
        "text_encoder",
        location,
        _weight_files(Path(location) / "text_encoder"),
        lambda name: OpenVinoTextEncoder(
            encoder,
            converted.compiled(
                name,
                TextEncoderForward(encoder),
                {"input_ids": torch.zeros(1, tokens, dtype=torch.long)},
                [("input_ids", [-1, tokens], "i64")],
            ),
        ),
    )
    cross = int(unet.config.cross_attention_dim)
    pipe.unet = fetch(
        "unet",
        location,
        _weight_files(Path(location) / "unet"),
        lambda name: OpenVinoUNet(
            unet,
            converted.compiled(
                name,
                UNetForward(unet),
                {
                    "sample": torch.randn(1, unet.config.in_channels, width, width),
                    "timestep": torch.tensor(999.0),
                    "encoder_hidden_states": torch.randn(1, tokens, cross),
                },
                [
                    ("sample", [-1, int(unet.config.in_channels), -1, -1], "f32"),
                    ("timestep", [], "f32"),
                    ("encoder_hidden_states", [-1, tokens, cross], "f32"),
                ],
            ),
        ),
    )
    tiny = type(autoencoder).__name__ == "AutoencoderTiny"
    source = str(getattr(autoencoder.config, "_name_or_path", "") or location) if tiny else location
    files = _weight_files(Path(source) if tiny else Path(location) / "vae")
    channels = int(autoencoder.config.latent_channels)
    pipe.vae = fetch(
        "taesd_decoder" if tiny else "vae_decoder",
        source,
        files,
        lambda name: OpenVinoDecoder(
            autoencoder,
            converted.compiled(
                name,
                DecoderForward(autoencoder),
                {"latents": torch.randn(1, channels, width, width)},
                [("latents", [-1, channels, -1, -1], "f32")],
            ),
        ),
    )
