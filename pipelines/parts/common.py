"""What every task pipeline shares: progress and cancellation callables, seeds, the step reporter.

Pipelines know nothing of the UI. A run takes `progress(step, total)` to report and `is_cancelled()` to
poll; the denoising callback raises `RunCancelled` as soon as Stop is pressed, so the GPU stops at the next
step instead of finishing the image.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from studio.core.errors import RunCancelled
from studio.core.metadata import GenerationParameters


@dataclass(frozen=True)
class GeneratedImage:
    """A result of any task: the image, what made it, and what its PNG carries beside (a style)."""

    image: Image.Image
    parameters: GenerationParameters
    png_chunks: dict[str, str] = field(default_factory=dict)


Progress = Callable[[int, int], None]
IsCancelled = Callable[[], bool]

MAX_SEED = 2**32 - 1


def no_progress(step: int, total: int) -> None:
    return None


def never_cancelled() -> bool:
    return False


def resolve_seed(seed: int) -> int:
    """-1 means a new random seed."""
    return secrets.randbelow(MAX_SEED + 1) if seed < 0 else seed


def image_seed(base_seed: int, index: int) -> int:
    """Image i of a run with seed s uses seed s+i, so any image can be made again on its own."""
    return (base_seed + index) % (MAX_SEED + 1)


def generator_for(seed: int) -> torch.Generator:
    # A CPU generator draws the same noise whatever the device, so a seed means the same image everywhere.
    return torch.Generator("cpu").manual_seed(seed)


class StepReporter:
    """A diffusers `callback_on_step_end` reporting progress over several images and obeying Stop."""

    def __init__(self, progress: Progress, is_cancelled: IsCancelled, images: int) -> None:
        self.progress = progress
        self.is_cancelled = is_cancelled
        self.images = images
        self.image_index = 0
        self.previews: Any = None  # a run's LivePreviews (pipelines/parts/previews.py), when it shows them

    def begin_image(self, index: int) -> None:
        self.image_index = index
        if self.previews is not None:
            self.previews.begin_image()

    def check(self) -> None:
        if self.is_cancelled():
            raise RunCancelled()

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        # Pipelines set _num_timesteps to the loop's length (image-to-image runs only part of the schedule).
        steps = getattr(pipe, "_num_timesteps", None) or len(pipe.scheduler.timesteps)
        done = min(step + 1, steps)
        self.progress(self.image_index * steps + done, self.images * steps)
        self.check()
        if self.previews is not None:
            self.previews.after_step(self.image_index, done, steps, callback_kwargs["latents"])
        return callback_kwargs
