"""What every result records: the parameters that made it, written into its PNG.

- `record`: an image a model denoised, from the run's settings and the seed it was denoised with.
- `derived_parameters`: a result made from a source image without denoising it (upscaled, restyled): what
  made the source, when the source carries it, then what this task did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from studio.core.metadata import GenerationParameters, read_parameters
from studio.core.models import ModelSource


@dataclass(frozen=True)
class RunSettings:
    """A request with every default filled in: what will actually run."""

    source: ModelSource
    prompt: str  # styles applied
    negative_prompt: str
    steps: int  # at least enough that one step runs at the task's strength
    guidance_scale: float
    sampler: str
    seed: int  # the first image's; -1 already replaced by a random seed
    user_prompt: str = ""  # as typed, before styles
    user_negative_prompt: str = ""
    styles: tuple[str, ...] = ()
    stylize: int = 100


def record(
    task: str, run: RunSettings, seed: int, size: tuple[int, int], **extras: Any
) -> GenerationParameters:
    """The parameters of one image, `seed` and `run` the ones it was denoised with: everything to make it
    again."""
    return GenerationParameters(
        task=task,
        prompt=run.prompt,
        negative_prompt=run.negative_prompt,
        steps=run.steps,
        sampler=run.sampler,
        guidance_scale=run.guidance_scale,
        seed=seed,
        width=size[0],
        height=size[1],
        model=run.source.name,
        user_prompt=run.user_prompt,
        user_negative_prompt=run.user_negative_prompt,
        styles=run.styles,
        extras=extras,
    )


def source_extras(source: Image.Image) -> dict[str, Any]:
    """Which task and seed made `source`, when it is one of ours."""
    carried = read_parameters(source)
    if isinstance(carried, GenerationParameters):
        return {"source_task": carried.task, "source_seed": carried.seed}
    return {}


def derived_parameters(
    task: str,
    source: Image.Image,
    size: tuple[int, int],
    extras: dict[str, Any],
    *,
    owned: Iterable[str] = (),
) -> GenerationParameters:
    """The parameters of a result made from `source`: the source's own (ours exactly; another studio's
    prompt, model and seed) with this task's `extras` on top. `owned` names the extras this task writes,
    whose values in the source's parameters are replaced, not mixed in."""
    carried = read_parameters(source)
    if isinstance(carried, GenerationParameters):
        base = carried
    else:  # another studio's parameters, as far as they read; a plain picture has none, not even a seed
        other = carried or {}
        steps = other.get("steps") if isinstance(other.get("steps"), int) else 0
        guidance = other.get("guidance_scale")
        base = GenerationParameters(
            task=task,
            prompt=str(other.get("prompt", "")),
            negative_prompt=str(other.get("negative_prompt", "")),
            steps=steps,
            sampler=str(other.get("sampler", "")) if steps else "",
            guidance_scale=float(guidance) if steps and isinstance(guidance, int | float) else 0,
            seed=other.get("seed") if isinstance(other.get("seed"), int) else None,
            width=size[0],
            height=size[1],
            model=str(other.get("model", "")),
        )
    owned = set(owned)
    kept = {key: value for key, value in base.extras.items() if key not in owned}
    extras = {**source_extras(source), **extras}
    return dataclasses.replace(base, task=task, width=size[0], height=size[1], extras={**kept, **extras})
