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
    is becoming rather than of its noise. The scheduler is the request's own, so wrapping it is safe."""

    def __init__(self, scheduler: Any) -> None:
        self.latest: torch.Tensor | None = None
        step = scheduler.step

        def watched_step(*args: Any, **kwargs: Any) -> Any:
            output = step(*args, **kwargs)
            self.latest = _x0_of(scheduler, output)
            return output

        scheduler.step = watched_step


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
        self, mode: str, decode: Callable[[torch.Tensor], Image.Image], send: PreviewSink, scheduler: Any
    ) -> None:
        self.mode = mode
        self.decode = decode
        self.send = send
        self.watch = X0Watch(scheduler)
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
    if mode == "taesd":
        try:
            tiny = tiny_autoencoder(lease, base, preset)
        except ModelUnavailable:
            log.info("no %s weights for previews; previewing by the latent approximation", preset.name)
        else:
            return LivePreviews("taesd", lambda latents: decoded_rgb(tiny, latents), send, scheduler)
    approximate = lambda latents: approximate_rgb(latents, preset, size)  # noqa: E731
    return LivePreviews("approximate", approximate, send, scheduler)
