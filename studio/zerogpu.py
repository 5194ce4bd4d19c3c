"""Hugging Face ZeroGPU: each request's GPU work inside a `spaces.GPU` function, for as long as it needs.

On ZeroGPU hardware (`SPACES_ZERO_GPU` set) a GPU is attached only inside functions decorated with
`spaces.GPU`, which run in another process: their arguments and results are pickled. So the function takes
the task's name and its typed request (plain data and PIL images) and returns the finished images with their
parameters; progress callbacks and Stop flags stay outside. The duration asked for is computed from the
request (size, steps, images, tiles) rather than a fixed maximum, so short jobs queue less.
`spaces` is imported only on that hardware.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the UI layer hands these in; the core does not import pipelines
    from pipelines.common import Request
    from pipelines.diffusion import GeneratedImage

BASE_SECONDS = 8  # moving weights in, building the pipeline, decoding
SECONDS_PER_STEP_AT_512 = 0.12  # an SD 1.5 step at 512×512 on an H200 slice, with margin
SECONDS_PER_TILE = 0.5  # one super-resolution tile
MIN_SECONDS, MAX_SECONDS = 10, 300


def on_zero_gpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() not in {"", "0", "false"}


def _pixels(request: Any) -> int:
    image = getattr(request, "image", None)
    if image is not None:
        return image.width * image.height
    return 1024 * 1024 if "xl" in str(getattr(request, "model", "") or "").lower() else 512 * 512


def gpu_seconds(task: str, request: Request) -> int:
    """How long `request` may hold the GPU: an overestimate from its size, steps, images and tiles."""
    scale = _pixels(request) / (512 * 512)
    if task == "upscale":
        tiles = math.ceil(_pixels(request) / request.tile_size**2) * max(1, math.ceil(request.scale / 4))
        seconds = BASE_SECONDS + tiles * SECONDS_PER_TILE * request.scale**2 / 4
        if request.mode == "creative":
            seconds += (request.scale**2 * scale) * (request.steps or 25) * SECONDS_PER_STEP_AT_512
    elif task == "style_instant":
        seconds = BASE_SECONDS + 2 * scale
    else:
        steps = getattr(request, "steps", None) or 30
        images = getattr(request, "num_images", 1)
        seconds = BASE_SECONDS + images * steps * SECONDS_PER_STEP_AT_512 * max(scale, 0.25)
    return int(min(MAX_SECONDS, max(MIN_SECONDS, math.ceil(seconds))))


def gpu_runner(
    generators: dict[str, Callable[..., Iterator[GeneratedImage]]],
) -> Callable[[str, Request], list[GeneratedImage]]:
    """A `spaces.GPU` function running any task: `run(task, request) -> [GeneratedImage, ...]`."""
    import spaces  # only on ZeroGPU hardware, where the platform provides it

    def duration(task: str, request: Request) -> int:
        return gpu_seconds(task, request)

    @spaces.GPU(duration=duration)
    def run_on_zero_gpu(task: str, request: Request) -> list[GeneratedImage]:
        return list(generators[task](request))

    return run_on_zero_gpu
