"""Which backend runs a diffusion call: torch, or on a CPU OpenVINO (studio/core/openvino_backend.py).

OpenVINO runs a call of an SD 1.x/2.x or SDXL model whole: the text encoders (prompts of any length and
weight), the UNet (the inpainting UNet too), the decoder (the VAE's, or TAESD's) and, for a task that starts
from an image, the encoder. A run's seamless tile and LoRAs are part of what is converted: each variant is
its own IR on disk, kept by identity (the LoRA files and weights among it), converted on first use. A call
it cannot run whole (ControlNet residuals, IP-Adapters' attention layers, an LCM UNet's guidance input)
runs on torch, with the reason in the log and `Backend: torch` in the PNG.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pipelines.parts.decoders import is_tiny
from pipelines.parts.loras import Adapter, loras_applied
from pipelines.parts.seamless import seamless
from studio.core.cache import BaseModel, Lease
from studio.core.cache.kinds import OPENVINO
from studio.core.openvino_backend import (
    ConvertedModels,
    DecoderForward,
    EncoderForward,
    OpenVinoAutoencoder,
    OpenVinoTextEncoder,
    OpenVinoUNet,
    TextEncoderForward,
    UNetForward,
    UNetWithAddedConditionForward,
    autoencoder_inputs,
    text_encoder_inputs,
    unet_inputs,
)

log = logging.getLogger(__name__)

RELEASED = ("text_encoder", "text_encoder_2", "unet")  # what OpenVINO stands for (the VAE's torch stays)


def openvino_refusal(base: BaseModel, *, task_refusal: str | None, image_prompts: bool) -> str | None:
    """Why OpenVINO cannot run this call whole (None: it can)."""
    if task_refusal:
        return task_refusal
    if not base.rules.can("openvino"):
        return base.rules.refusal("openvino")
    if image_prompts:
        return "image prompts add IP-Adapter attention layers to the UNet"
    if base.unet_config.get("time_cond_proj_dim"):
        return "this UNet takes a guidance embedding (LCM), which is not converted"
    return None


def _weight_files(source: str, subfolder: str | None) -> list[Path]:
    """The files a converted module's identity is stamped with: a checkpoint file, or a folder's weights."""
    path = Path(source)
    if path.is_file():
        return [path]
    folder = path / subfolder if subfolder else path
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def use_openvino(
    lease: Lease,
    base: BaseModel,
    pipe: Any,
    converted: ConvertedModels,
    *,
    tile: bool,
    adapters: list[Adapter],
    encodes: bool,
) -> None:
    """Swap `pipe`'s text encoders, UNet and autoencoder for OpenVINO's, each variant converted on first use
    (the IR kept on disk) and compiled once into the shared cache, where it is dropped with its base model.
    The base model's torch text encoders and UNet let their weights go meanwhile (no run holding them), so
    the process holds one copy of each; converting another variant, or a run on torch, reads them back."""
    location = base.source.location
    scale, side = base.vae_scale_factor, int(pipe.unet.config.sample_size)

    def compiled(component: str, module: Any, traced: type, inputs: dict, subfolder: str | None) -> Any:
        """The compiled model for one module in this run's variant, sized in the cache by its IR."""
        shared = base.components.get(subfolder or "") is module  # else its own: an inpainting UNet, TAESD
        source = location if shared else str(module.config["_name_or_path"])
        fused = [a for a in adapters if a.name in (getattr(module, "peft_config", None) or {})]
        tiled = tile and not component.startswith("text_encoder")  # no convolutions to wrap there
        variant = {"tile": tiled, "loras": [[adapter.file_hash, adapter.weight] for adapter in fused]}
        name = converted.identity(source, component, _weight_files(source, subfolder), variant)

        def load() -> Any:
            if not converted.on_disk(name):
                if base.released:  # converting needs the torch weights: read back, let go after
                    lease.read_back_weights(base)
                with ExitStack() as variant_of:
                    if tiled:
                        variant_of.enter_context(seamless(module))
                    if fused:
                        variant_of.enter_context(loras_applied(pipe, pipe.unet, fused))
                    converted.converted(name, traced(module), inputs)
            release(component, module)  # before OpenVINO reads its own copy in: one copy at a time
            return converted.compile(converted.folder / name / "model.xml")

        size = lambda value: converted.weight_bytes(name)  # noqa: E731
        return lease.model(
            OPENVINO,
            source,
            load,
            part=component,
            variant=name,
            module=lambda value: None,
            nbytes=size,
            part_of=base,
        )

    def release(component: str, module: Any) -> None:
        if (
            component in RELEASED
            and base.components.get(component) is module
            and component not in base.released
        ):
            lease.let_go_weights(base, component)

    # Converted while the pipeline still holds the torch modules (LoRAs switch on through it); swapped after.
    tokens = int(pipe.tokenizer.model_max_length)
    encoders = {
        name: OpenVinoTextEncoder(
            module,
            compiled(name, module, TextEncoderForward, text_encoder_inputs(tokens), name),
        )
        for name in ("text_encoder", "text_encoder_2")
        if (module := pipe.components.get(name)) is not None
    }
    unet = pipe.unet
    sdxl = base.family == "sdxl"
    text_embeds = int(pipe.text_encoder_2.config.projection_dim) if sdxl else None
    unet_forward = UNetWithAddedConditionForward if sdxl else UNetForward
    unet_compiled = compiled("unet", unet, unet_forward, unet_inputs(unet, text_embeds), "unet")
    autoencoder = pipe.vae
    tiny = is_tiny(autoencoder)  # TAESD, the fast decoder: its own folder
    prefix, subfolder = ("taesd", None) if tiny else ("vae", "vae")
    inputs = autoencoder_inputs(autoencoder, side, scale)
    decoder = compiled(f"{prefix}_decoder", autoencoder, DecoderForward, inputs["decoder"], subfolder)
    encoder = (
        compiled(f"{prefix}_encoder", autoencoder, EncoderForward, inputs["encoder"], subfolder)
        if encodes
        else None
    )

    for name, wrapper in encoders.items():
        setattr(pipe, name, wrapper)
    pipe.unet = OpenVinoUNet(unet, unet_compiled)
    pipe.vae = OpenVinoAutoencoder(autoencoder, decoder, encoder)
    for component in RELEASED:  # a torch run since the first may have read them back
        if component in base.components:
            release(component, base.components[component])
