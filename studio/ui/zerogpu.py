"""Hugging Face ZeroGPU: each request's GPU work inside a `spaces.GPU` function, for as long as it needs.

On ZeroGPU hardware (`SPACES_ZERO_GPU` set) a GPU is attached only inside functions decorated with
`spaces.GPU`, which run in another process: their arguments and results are pickled. So the function takes
the task's name and its typed request (plain data and PIL images) and returns the finished images with their
parameters; progress callbacks and Stop flags stay outside. The duration asked for is computed from the
request (size, steps, images, tiles; what it leaves out, from its model preset) rather than a fixed
maximum, so short jobs queue less. `spaces` is imported only on that hardware.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from studio.core.presets import Presets
from studio.core.requests import Request

BASE_SECONDS = 8  # moving weights in, building the pipeline, decoding
SECONDS_PER_STEP_AT_512 = 0.12  # an SD 1.5 step at 512×512 on an H200 slice, with margin
SECONDS_PER_TILE = 0.5  # one super-resolution tile
MIN_SECONDS, MAX_SECONDS = 10, 300


def on_zero_gpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() not in {"", "0", "false"}


def _pixels(request: Request, presets: Presets) -> int:
    image = getattr(request, "image", None)
    if image is not None:
        return image.width * image.height
    preset = presets.models.get(getattr(request, "model", None) or presets.default_model)
    if preset is not None:
        return preset.resolution**2
    return 1024 * 1024 if "xl" in str(getattr(request, "model", "") or "").lower() else 512 * 512


def gpu_seconds(task: str, request: Request, presets: Presets) -> int:
    """How long `request` may hold the GPU: an overestimate from its size, steps, images and tiles."""
    scale = _pixels(request, presets) / (512 * 512)
    steps = getattr(request, "steps", None) or presets.defaults_for(getattr(request, "model", None)).steps
    if task == "upscale":
        tiles = math.ceil(_pixels(request, presets) / request.tile_size**2) * max(
            1, math.ceil(request.scale / 4)
        )
        seconds = BASE_SECONDS + tiles * SECONDS_PER_TILE * request.scale**2 / 4
        if request.mode == "creative":
            seconds += (request.scale**2 * scale) * steps * SECONDS_PER_STEP_AT_512
    elif task == "style_instant":
        seconds = BASE_SECONDS + 2 * scale
    else:
        images = getattr(request, "num_images", 1)
        seconds = BASE_SECONDS + images * steps * SECONDS_PER_STEP_AT_512 * max(scale, 0.25)
    return int(min(MAX_SECONDS, max(MIN_SECONDS, math.ceil(seconds))))


def gpu_runner(pipelines: Mapping[str, Any], presets: Presets) -> Callable[[str, Request], list[Any]]:
    """A `spaces.GPU` function running any task: `run(task, request) -> [result, ...]`. `pipelines` may
    still fill up after this is made (each tab adds its own)."""
    import spaces  # only on ZeroGPU hardware, where the platform provides it

    def duration(task: str, request: Request) -> int:
        return gpu_seconds(task, request, presets)

    @spaces.GPU(duration=duration)
    def run_on_zero_gpu(task: str, request: Request) -> list[Any]:
        return list(pipelines[task].generate(request))

    return run_on_zero_gpu
