"""The autoencoders that turn latents into pictures: the model's own VAE (Full), its family's tiny
autoencoder TAESD (Fast), and a linear map that needs no weights at all (the approximate live preview).

On a CPU the model's VAE decode is about 80 % of a one-step SD-Turbo image; TAESD decodes the same latents
about 12× faster with a little less fine detail. "auto" is Fast on a CPU and Full on a GPU, and falls back
to Full where TAESD's weights are neither on this machine nor reachable. Which one decoded an image is
recorded in its parameters, so Enhance can decode it again with the full VAE.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from PIL import Image

from studio.core.cache import BaseModel, Lease
from studio.core.cache.kinds import FAST_DECODER
from studio.core.devices import DeviceConfig
from studio.core.errors import InvalidRequest, ModelUnavailable
from studio.core.models import load_weights, weights_source
from studio.core.presets import DecoderPreset

log = logging.getLogger(__name__)

DecoderChoice = Literal["auto", "fast", "full"]


def wanted_decoder(
    choice: str, device_config: DeviceConfig, *, auto_is_fast: bool = False
) -> Literal["fast", "full"]:
    """The decoder a request asks for: "auto" is Fast on a CPU (where the VAE is most of the time) and
    Full on a GPU (where it is cheap and the detail is worth it), or Fast everywhere for a task whose
    frames must be quick (`auto_is_fast`)."""
    if choice == "auto":
        return "full" if device_config.is_accelerator and not auto_is_fast else "fast"
    return "full" if choice == "full" else "fast"


def is_tiny(vae: Any) -> bool:
    """Whether a model's own autoencoder already is a tiny one (SDXS ships TAESD as its VAE)."""
    return type(vae).__name__ == "AutoencoderTiny"


def tiny_autoencoder(lease: Lease, base: BaseModel, preset: DecoderPreset) -> Any:
    """The family's TAESD from the shared cache, loaded once (on this machine, or from the hub when it may
    be reached); raises `ModelUnavailable` when it cannot be had."""
    if is_tiny(base.components["vae"]):
        return base.components["vae"]
    if preset.source is None:
        raise ModelUnavailable(f"The presets name no fast decoder for {base.rules.label} models.")
    device_config = lease.device_config
    source = weights_source(f"the fast decoder {preset.name}", preset.source)

    def load() -> Any:
        from diffusers import AutoencoderTiny

        def from_pretrained(local_only: bool) -> Any:
            options: dict[str, Any] = {"dtype": device_config.dtype}
            if source.kind == "hub":
                options["local_files_only"] = local_only
            return AutoencoderTiny.from_pretrained(source.location, **options)

        return load_weights(source, lease.offline, from_pretrained, hint="or choose the Full decoder.")

    return lease.model(FAST_DECODER, source.location, load)


def decoder_for(
    lease: Lease, base: BaseModel, preset: DecoderPreset | None, choice: str, *, auto_is_fast: bool = False
) -> tuple[Any | None, Literal["fast", "full"]]:
    """The autoencoder to decode with (None: the model's own) and what to record. "auto" on a CPU takes
    TAESD when it can be had, else the full VAE; "fast" without TAESD (or with none for the model's
    family, `preset` None) is an error that says why."""
    wanted = wanted_decoder(choice, lease.device_config, auto_is_fast=auto_is_fast)
    if wanted == "full" or is_tiny(base.components["vae"]):
        return None, "fast" if is_tiny(base.components["vae"]) else "full"
    if preset is None or preset.source is None:
        if choice == "fast":
            raise InvalidRequest(f"There is no fast decoder for {base.rules.label} models: choose Full.")
        return None, "full"
    try:
        return tiny_autoencoder(lease, base, preset), "fast"
    except ModelUnavailable:
        if choice == "fast":
            raise
        log.info("the fast decoder %s is not available; decoding with the full VAE", preset.source)
        return None, "full"


@contextmanager
def fast_drafts(vae: Any, fast: Any, given: list[torch.Tensor]) -> Iterator[None]:
    """The model's `vae` decoding by the `fast` autoencoder for the length of one call (a steered run's
    draft; its encoder untouched), keeping what each decode was given in `given`, so the chosen draft
    alone is then decoded by the VAE itself (`full_decode`): k drafts cost k fast decodes and one full."""

    def drafted(latents: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        given.append(latents.detach().clone())
        return fast.decode(
            _rescaled(latents, vae.config, fast.config).to(fast.device, fast.dtype), *args, **kwargs
        )

    vae.decode = drafted
    try:
        yield
    finally:
        del vae.decode  # the class's own again


def _rescaled(latents: torch.Tensor, scaled_for: Any, wanted_by: Any) -> torch.Tensor:
    """Latents a pipeline scaled for one autoencoder's config (its scaling and shift factors, or its
    latents' mean and deviation) as it would have scaled them for another's."""

    def moments(config: Any) -> tuple[Any, Any]:
        mean, deviation = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
        if mean is None or deviation is None:
            return getattr(config, "shift_factor", None) or 0.0, 1.0
        shape = (1, -1, 1, 1)
        return (
            torch.tensor(v, dtype=latents.dtype, device=latents.device).view(shape) for v in (mean, deviation)
        )

    mean, deviation = moments(scaled_for)
    raw = (latents - mean) * scaled_for.scaling_factor / deviation
    mean, deviation = moments(wanted_by)
    return raw * deviation / wanted_by.scaling_factor + mean


def full_decode(pipe: Any, given: torch.Tensor, *, upcasts: bool) -> Image.Image:
    """The picture `pipe`'s own VAE makes of what a fast-decoded draft's decode was `given` (in fp32 where
    the pipeline `upcasts` an fp16 VAE, as SDXL's does), made a picture as the pipeline makes it: the very
    one the run would have made with the full VAE."""
    vae = pipe.vae
    upcast = upcasts and vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    with torch.no_grad():
        if upcast:
            vae.to(dtype=torch.float32)
        try:
            image = vae.decode(given.to(vae.device, vae.dtype), return_dict=False)[0]
        finally:
            if upcast:
                vae.to(dtype=torch.float16)
    return pipe.image_processor.postprocess(image, output_type="pil")[0]


def approximate_rgb(latents: torch.Tensor, preset: DecoderPreset, size: tuple[int, int]) -> Image.Image:
    """A picture of `latents` (1×C×h×w, as the denoiser sees them) by the family's fixed linear map from
    latent channels to RGB: no weights, a few milliseconds, at the latents' resolution scaled up to `size`."""
    factors = torch.tensor(preset.latent_rgb_factors, dtype=torch.float32)
    bias = torch.tensor(preset.latent_rgb_bias, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latents[0].detach().float().cpu(), factors) + bias
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return Image.fromarray(pixels, "RGB").resize(size, Image.Resampling.BILINEAR)


def decoded_rgb(autoencoder: Any, latents: torch.Tensor) -> Image.Image:
    """A picture of `latents` decoded by a tiny autoencoder (which takes them unscaled)."""
    with torch.no_grad():
        decoded = autoencoder.decode(latents.to(autoencoder.device, autoencoder.dtype), return_dict=False)[0]
    pixels = ((decoded[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy(), "RGB")
