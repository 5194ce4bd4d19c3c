"""Live previews: what each image looks like while it denoises, decoded cheaply every few steps.

The request's `previews` chooses how: "approximate" maps the latents to RGB by a fixed linear map (no
weights, milliseconds); "taesd" decodes them with the family's tiny autoencoder from the shared cache, or
the approximation where its weights cannot be had; "off". A preview shows the model's current estimate of
the finished image (the sampler's x0 prediction, where it gives one) rather than the noisy latents.

Previews are taken only while all of them together cost at most `PREVIEW_SHARE` of the time spent
denoising so far (`preview_due`), never after the last step (the real decode follows), and they go to the
run's `preview` callable only: never into the results, the history or the API's answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from PIL import Image

from pipelines.parts.decoders import approximate_rgb, decoded_rgb, tiny_autoencoder
from studio.core.cache import BaseModel, Lease
from studio.core.errors import ModelUnavailable
from studio.core.presets import DecoderPreset

log = logging.getLogger(__name__)

PreviewMode = Literal["off", "approximate", "taesd"]
PREVIEW_SHARE = 0.05  # of the denoising time, at most, spent on previews
# Before a decoder's first preview its cost is not known: a tiny autoencoder costs about a quarter of a
# UNet step on a CPU (less on a GPU); the approximation next to nothing.
FIRST_COST_IN_STEPS = {"approximate": 0.0, "taesd": 0.25}


@dataclass(frozen=True)
class PreviewImage:
    """An unfinished image: image `index` of the run after `step` of `steps`."""

    image: Image.Image
    index: int
    step: int
    steps: int


PreviewSink = Callable[[PreviewImage], None]


def no_preview(preview: PreviewImage) -> None:
    return None


def preview_due(
    step: int, steps: int, *, denoising_seconds: float, previewing_seconds: float, cost_seconds: float
) -> bool:
    """Whether to show a preview after `step` (1-based) of `steps`: never after the last, and only while
    the previews so far and this one stay within `PREVIEW_SHARE` of the denoising time."""
    if step >= steps:
        return False
    return previewing_seconds + cost_seconds <= PREVIEW_SHARE * denoising_seconds


class X0Watch:
    """Keeps the sampler's latest estimate of the finished latents (x0), for previews of what the image
    is becoming rather than of its noise. The scheduler is the request's own, so wrapping it is safe. A
    `flow` sampler's x0 is the sample less sigma times the velocity the model predicted."""

    def __init__(self, scheduler: Any, *, flow: bool = False) -> None:
        self.latest: torch.Tensor | None = None
        step = scheduler.step

        def watched_step(*args: Any, **kwargs: Any) -> Any:
            output = step(*args, **kwargs)
            self.latest = _flow_x0(scheduler, args, kwargs) if flow else _x0_of(scheduler, output)
            return output

        scheduler.step = watched_step


def _flow_x0(scheduler: Any, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """x0 of a flow-matching step(model_output, timestep, sample): x_t = (1 - σ) x0 + σ noise and the model
    predicts noise - x0, so x0 = x_t - σ v, with the σ of the step just taken."""
    velocity = kwargs.get("model_output", args[0] if args else None)
    sample = kwargs.get("sample", args[2] if len(args) > 2 else None)
    sigmas, index = getattr(scheduler, "sigmas", None), getattr(scheduler, "step_index", None)
    if velocity is None or sample is None or sigmas is None or not index:
        return None
    return sample - sigmas[index - 1].to(sample.device, sample.dtype) * velocity


def unpacked(latents: torch.Tensor, size: tuple[int, int], scale: int) -> torch.Tensor:
    """Latents handed over as 2×2 patches in a row (batch × patches × 4C, FLUX.1's) as batch × C × h × w,
    for an image of `size` (width, height) and an autoencoder that scales by `scale`."""
    batch, _, channels = latents.shape
    height, width = 2 * (size[1] // (scale * 2)), 2 * (size[0] // (scale * 2))
    patches = latents.view(batch, height // 2, width // 2, channels // 4, 2, 2)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape(batch, channels // 4, height, width)


def _x0_of(scheduler: Any, output: Any) -> torch.Tensor | None:
    if isinstance(output, tuple):  # return_dict=False: (prev_sample, pred_original_sample) where given
        return (
            output[1] if len(output) > 1 and isinstance(output[1], torch.Tensor) else _multistep_x0(scheduler)
        )
    x0 = getattr(output, "pred_original_sample", None)
    return x0 if isinstance(x0, torch.Tensor) else _multistep_x0(scheduler)


def _multistep_x0(scheduler: Any) -> torch.Tensor | None:
    """DPM-Solver++ keeps its data predictions (x0) as model outputs."""
    outputs = getattr(scheduler, "model_outputs", None)
    if outputs and "++" in str(getattr(scheduler.config, "algorithm_type", "")):
        return outputs[-1]
    return None


class LivePreviews:
    """After each denoising step: time it, and when a preview is due, decode one and send it."""

    def __init__(
        self,
        mode: str,
        decode: Callable[[torch.Tensor], Image.Image],
        send: PreviewSink,
        scheduler: Any,
        *,
        flow: bool = False,
    ) -> None:
        self.mode = mode
        self.decode = decode
        self.send = send
        self.watch = X0Watch(scheduler, flow=flow)
        self.cost: float | None = None  # seconds a preview took, once measured
        self.begin_image()

    def begin_image(self) -> None:
        self.denoising = self.previewing = 0.0
        self.last = time.perf_counter()

    def after_step(self, index: int, step: int, steps: int, latents: torch.Tensor) -> None:
        now = time.perf_counter()
        step_seconds = now - self.last
        self.denoising += step_seconds
        cost = self.cost if self.cost is not None else FIRST_COST_IN_STEPS[self.mode] * step_seconds
        due = preview_due(
            step,
            steps,
            denoising_seconds=self.denoising,
            previewing_seconds=self.previewing,
            cost_seconds=cost,
        )
        if due:
            x0 = self.watch.latest
            image = self.decode(x0 if x0 is not None and x0.shape == latents.shape else latents)
            self.send(PreviewImage(image, index, step, steps))
            self.cost = time.perf_counter() - now
            self.previewing += self.cost
        self.last = time.perf_counter()


def live_previews(
    lease: Lease,
    base: BaseModel,
    preset: DecoderPreset | None,
    mode: str,
    send: PreviewSink,
    scheduler: Any,
    size: tuple[int, int],
) -> LivePreviews | None:
    """The previews of a run in `mode` with the request's `scheduler` (None when off, when nobody
    watches, or for a family with no decoder preset, whose latents have no preview map here); "taesd"
    without its weights previews by the approximation instead."""
    if mode == "off" or send is no_preview or preset is None:
        return None
    channels = base.latent_channels
    if channels != len(preset.latent_rgb_factors):  # a map made for other latents would show nonsense
        log.info("%s maps %d latent channels, this model has %d: no previews", preset.name,
                 len(preset.latent_rgb_factors), channels)  # fmt: skip
        return None
    flow = base.rules.samplers == "flow"
    if mode == "taesd":
        try:
            tiny = tiny_autoencoder(lease, base, preset)
        except ModelUnavailable:
            log.info("no %s weights for previews; previewing by the latent approximation", preset.name)
        else:
            decode = lambda latents: decoded_rgb(tiny, latents)  # noqa: E731
            return LivePreviews("taesd", decode, send, scheduler, flow=flow)

    def approximate(latents: torch.Tensor) -> Image.Image:
        if base.rules.latents_packed:
            latents = unpacked(latents, size, base.vae_scale_factor)
        return approximate_rgb(latents, preset, size)

    return LivePreviews("approximate", approximate, send, scheduler, flow=flow)
