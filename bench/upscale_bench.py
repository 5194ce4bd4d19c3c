"""Time and peak memory of a super-resolution upscale through the studio's Upscale pipeline.

    python bench/upscale_bench.py --size 1024 --upscaler "Real-ESRGAN AnimeVideo v3 x4" --tile 256

Prints wall time, peak resident memory of the process (CPU) and, on CUDA, peak allocated GPU memory.
The input is a real photograph (scikit-image's astronaut) resized to the requested size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import skimage.data  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from pipelines.upscale import UpscalePipeline, UpscaleRequest  # noqa: E402
from studio.core.cache import ModelCache  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.presets import load_presets  # noqa: E402
from studio.core.requests import parse_request  # noqa: E402
from studio.core.settings import DEFAULT_PRESETS_DIR  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="input side in pixels")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--upscaler", default="Real-ESRGAN x4plus")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    pipeline = UpscalePipeline(ModelCache(device), load_presets(DEFAULT_PRESETS_DIR))
    image = Image.fromarray(skimage.data.astronaut()).resize((args.size, args.size), Image.Resampling.LANCZOS)
    request = parse_request(
        UpscaleRequest,
        {"image": image, "upscaler": args.upscaler, "scale": args.scale, "tile_size": args.tile},
    )
    with pipeline.cache.lease() as lease:  # load first: the figure is the upscale, not the load
        pipeline.upscalers.network(lease, args.upscaler)
    before = peak_rss_mib()
    if device.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    started = time.perf_counter()
    [result] = pipeline(request)
    if device.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started

    print(f"device: {device.describe()}, threads: {torch.get_num_threads()}")
    output = f"{result.image.width}x{result.image.height}"
    print(f"{args.upscaler}: {args.size}x{args.size} -> {output}, tile {args.tile}")
    print(f"time: {elapsed:.1f} s")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (after loading the model: {before:.0f} MiB)")
    if device.device.type == "cuda":
        print(f"peak GPU allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
