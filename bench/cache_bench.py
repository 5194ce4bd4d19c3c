"""The model cache against raw diffusers: peak GPU memory and time, weight loads when switching tabs,
recovery from a forced out-of-memory error, and a sequence of tabs under a GPU budget.

    python bench/cache_bench.py                 # on a GPU: SD 1.5 512² × 25 steps and SDXL 1024² × 30 steps
                                                # then SDXL t2i → style transfer → ×4 upscale → t2i, 8 GiB
    python bench/cache_bench.py --tiny          # the same code paths with the test suite's tiny models (CPU)
    python bench/cache_bench.py --flux          # on a GPU: FLUX.1-schnell's shape, 1024² × 4 steps, bf16
    python bench/cache_bench.py --flux --quantize fp8   # and its peak with fp8 transformer weights

Models are the real architectures with random weights (../shared/bench/arch.py), saved in diffusers layout
and loaded back by path through the studio's loader; speed and memory do not depend on weight values.
Raw diffusers runs the same request from the same folder, in the same process, one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "shared" / "bench"))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from pipelines.image_to_image import ImageToImagePipeline, ImageToImageRequest  # noqa: E402
from pipelines.inpaint import InpaintPipeline, InpaintRequest  # noqa: E402
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest  # noqa: E402
from pipelines.upscale import UpscalePipeline, UpscaleRequest  # noqa: E402
from studio.core.cache import BaseModel, ModelCache, free_memory  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.errors import OutOfMemory  # noqa: E402
from studio.core.memory import MemoryBudget  # noqa: E402
from studio.core.presets import load_presets  # noqa: E402
from studio.core.requests import parse_request  # noqa: E402
from studio.core.settings import DEFAULT_PRESETS_DIR  # noqa: E402

GIB = 1024**3


def build(kind: str, folder: Path) -> Path:
    if kind.startswith("tiny"):
        from tests.tiny_models import BUILDERS

        return BUILDERS[kind.removeprefix("tiny-")](folder)
    import arch

    if kind == "flux1_schnell":  # 12B + 4.8B parameters: built in bf16, as they are published
        arch.flux1_schnell("cpu", torch.bfloat16).save_pretrained(folder)
        return folder
    getattr(arch, kind)().save_pretrained(folder)
    return folder


@contextlib.contextmanager
def square_side(side: int) -> Iterator[None]:
    """Text to image at `side`² whatever the model's own size (its 1:1 aspect is at the model's side)."""
    resolution = BaseModel.resolution
    BaseModel.resolution = lambda base, source: side
    try:
        yield
    finally:
        BaseModel.resolution = resolution


def measure(
    run: Callable[[], object], device: torch.device, repeats: int, warm_up: bool = True
) -> tuple[float, float]:
    """Median seconds and peak allocated GiB of `run()` (after one warm-up run, unless told not to)."""
    if warm_up:
        run()
    times, peak = [], 0.0
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = max(peak, torch.cuda.max_memory_allocated() / GIB)
        times.append(time.perf_counter() - started)
    return statistics.median(times), peak


def studio_run(
    folder: Path,
    size: int,
    steps: int,
    device_name: str,
    repeats: int,
    guidance: float,
    quantize: str = "none",
) -> tuple[float, float]:
    """The studio's text to image of `folder` at `size`²: median seconds and peak GiB (its denoiser loaded
    with `quantize`)."""
    config = resolve_device(device_name, quantize=quantize)
    request = parse_request(
        TextToImageRequest,
        {"prompt": "a lighthouse", "model": str(folder), "steps": steps, "guidance_scale": guidance,
         "sampler": "Euler", "seed": 1},
    )  # fmt: skip
    cache = ModelCache(config, offline=True)
    studio = TextToImagePipeline(cache, load_presets(DEFAULT_PRESETS_DIR))
    with square_side(size):  # the exact size raw diffusers gets
        measured = measure(lambda: studio(request), config.device, repeats)
    cache.clear()
    free_memory()
    return measured


def studio_vs_raw(
    folder: Path, size: int, steps: int, device_name: str, repeats: int, guidance: float = 7.0
) -> float:
    """The studio against raw diffusers on one request; returns the studio's peak GiB."""
    from diffusers import DiffusionPipeline, EulerDiscreteScheduler

    config = resolve_device(device_name)
    studio_time, studio_peak = studio_run(folder, size, steps, device_name, repeats, guidance)

    raw = DiffusionPipeline.from_pretrained(folder, dtype=config.dtype).to(config.device)
    if "unet" in raw.components:  # the studio's Euler; a flow-matching model keeps its own Euler
        raw.scheduler = EulerDiscreteScheduler.from_config(raw.scheduler.config)
    raw.set_progress_bar_config(disable=True)

    def raw_run() -> object:
        generator = torch.Generator(config.device).manual_seed(1)
        return raw("a lighthouse", height=size, width=size, num_inference_steps=steps,
                   guidance_scale=guidance, generator=generator)  # fmt: skip

    raw_time, raw_peak = measure(raw_run, config.device, repeats)
    raw = None  # let its weights go before the next model
    free_memory()
    print(
        f"{folder.name} {size}² × {steps} steps: studio {studio_time:.2f} s, {studio_peak:.2f} GiB peak; "
        f"raw diffusers {raw_time:.2f} s, {raw_peak:.2f} GiB peak; "
        f"time {100 * (studio_time / raw_time - 1):+.1f}%, memory "
        f"{100 * (studio_peak / raw_peak - 1) if raw_peak else 0:+.1f}%"
    )
    return studio_peak


def switching_tabs(folder: Path, device_name: str) -> None:
    config = resolve_device(device_name)
    presets = load_presets(DEFAULT_PRESETS_DIR)
    cache = ModelCache(config, offline=True)
    image = Image.new("RGB", (512, 512), "gray")
    mask = Image.new("L", (512, 512), 0)
    mask.paste(255, (128, 128, 384, 384))
    common = {"prompt": "x", "model": str(folder), "steps": 2, "seed": 1}
    runs = {
        "text to image": (TextToImagePipeline(cache, presets), TextToImageRequest, {}),
        "image to image": (ImageToImagePipeline(cache, presets), ImageToImageRequest, {"image": image}),
        "inpaint": (InpaintPipeline(cache, presets), InpaintRequest, {"image": image, "mask": mask}),
        "creative upscale": (
            UpscalePipeline(cache, presets),
            UpscaleRequest,
            {"image": image, "mode": "creative", "upscaler": "Lanczos (no model)", "scale": 2},
        ),
    }
    allocated = None
    for name, (pipeline, request_type, extra) in runs.items():
        pipeline(parse_request(request_type, {**common, **extra}))
        now = torch.cuda.memory_allocated() / GIB if config.device.type == "cuda" else 0.0
        allocated = now if allocated is None else allocated
        change = now - allocated
        print(
            f"after {name}: weight loads {cache.stats().weight_loads}, "
            f"allocated {now:.2f} GiB ({change:+.2f})"
        )
    cache.clear()


def forced_out_of_memory(folder: Path, device_name: str) -> None:
    """A request far too large for the GPU: the studio recovers or says what to change; the next run works."""
    config = resolve_device(device_name)
    presets = load_presets(DEFAULT_PRESETS_DIR)
    cache = ModelCache(config, offline=True, budget=MemoryBudget(1 * GIB, None))
    pipeline = TextToImagePipeline(cache, presets)
    started = time.perf_counter()
    try:
        with square_side(4096):
            pipeline(parse_request(TextToImageRequest, {"prompt": "x", "model": str(folder), "steps": 2}))
        print(f"4096² run recovered (tiled decoding) in {time.perf_counter() - started:.1f} s")
    except OutOfMemory as error:
        print(f"4096² run reported after {time.perf_counter() - started:.1f} s: {error}")
    pipeline(parse_request(TextToImageRequest, {"prompt": "x", "model": str(folder), "steps": 2}))
    print("the next normal run succeeded")
    cache.clear()


def build_adapters(kind: str, base: Path, scratch: Path) -> Path:
    """Presets with a Canny ControlNet and an IP-Adapter for the SDXL model at `base`: the real shapes
    (ControlNet from the UNet, IP-Adapter with a ViT-bigG image encoder, as h94's sdxl_models) or tiny."""
    from diffusers import ControlNetModel, UNet2DConditionModel
    from transformers import CLIPVisionConfig

    from tests.tiny_models import build_controlnet, build_ip_adapter, write_adapter_presets

    if kind.startswith("tiny"):
        controlnet = build_controlnet(base, scratch / "controlnet")
        adapter = build_ip_adapter(base, scratch / "ip-adapter")
        style_block = "up_blocks.0.attentions.0"
    else:
        controlnet = scratch / "controlnet"
        unet = UNet2DConditionModel.from_pretrained(base / "unet")
        ControlNetModel.from_unet(unet).to(torch.float16).save_pretrained(controlnet)
        del unet
        big_g = CLIPVisionConfig(
            hidden_size=1664, intermediate_size=8192, num_attention_heads=16, num_hidden_layers=48,
            image_size=224, patch_size=14, projection_dim=1280, hidden_act="gelu",
        )  # fmt: skip
        adapter = build_ip_adapter(base, scratch / "ip-adapter", encoder_config=big_g, dtype=torch.float16)
        style_block = "up_blocks.0.attentions.1"
    return write_adapter_presets(scratch / "presets", {"sdxl": (controlnet, adapter, style_block)})


def budget_sequence(
    kind: str, folder: Path, size: int, steps: int, device_name: str, budget_gib: float
) -> None:
    """Text to image, diffusion style transfer (+ ControlNet + IP-Adapter), a ×4 upscale of a size² image
    and text to image again, with no budget and then with `budget_gib`: time and peak memory of each."""
    from pipelines.diffusion_style import DiffusionStylePipeline, DiffusionStyleRequest

    config = resolve_device(device_name)
    with tempfile.TemporaryDirectory() as scratch:
        presets = load_presets(build_adapters(kind, folder, Path(scratch)))
        photo = Image.effect_mandelbrot((size, size), (-2.0, -1.5, 1.0, 1.5), 100).convert("RGB")
        painting = Image.radial_gradient("L").convert("RGB").resize((size // 2, size // 2))
        common = {"prompt": "a lighthouse", "model": str(folder), "steps": steps, "seed": 1}
        for label, budget in (("no budget", None), (f"{budget_gib:g} GiB budget", budget_gib * GIB)):
            cache = ModelCache(
                config, offline=True, budget=MemoryBudget(None if budget is None else int(budget), None)
            )
            text_to_image = TextToImagePipeline(cache, presets)  # at the model's own side: `size`
            runs = [
                ("text to image", text_to_image, TextToImageRequest, common),
                ("style transfer", DiffusionStylePipeline(cache, presets), DiffusionStyleRequest,
                 {**common, "image": photo, "style_image": painting, "structure": "canny"}),
                ("upscale x4", UpscalePipeline(cache, presets), UpscaleRequest,
                 {"image": photo, "upscaler": "Real-ESRGAN x4plus", "scale": 4}),
                ("text to image again", text_to_image, TextToImageRequest, common),
            ]  # fmt: skip
            for name, pipeline, request_type, values in runs:
                request = parse_request(request_type, values)
                run = functools.partial(pipeline, request)
                seconds, peak = measure(run, config.device, repeats=1, warm_up=False)
                print(
                    f"{label}: {name}: {seconds:.1f} s, peak {peak:.2f} GiB, "
                    f"offload {cache.stats().last_offload}"
                )
            cache.clear()
            free_memory()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU, to check the script")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=8.0, help="GiB, for the SDXL budget sequence")
    parser.add_argument("--flux", action="store_true", help="FLUX.1-schnell's shape (with --tiny: tiny FLUX)")
    parser.add_argument(
        "--quantize", choices=["int8", "fp8", "nf4"], help="with --flux: its peak against bf16's"
    )
    args = parser.parse_args()
    if args.flux:  # studio against raw diffusers only: the tab sequence is the UNet models' measure
        kind, size = ("tiny-flux", 64) if args.tiny else ("flux1_schnell", 1024)
        with tempfile.TemporaryDirectory() as scratch:
            folder = build(kind, Path(scratch) / kind)
            print(f"device: {resolve_device(args.device).describe()}")
            full_peak = studio_vs_raw(folder, size, 4, args.device, args.repeats, guidance=0.0)
            if args.quantize:
                seconds, peak = studio_run(folder, size, 4, args.device, args.repeats, 0.0, args.quantize)
                ratio = (
                    f"{100 * peak / full_peak:.0f}% of the unquantized peak" if full_peak else "(no GPU peak)"
                )
                print(f"--quantize {args.quantize}: {seconds:.2f} s, {peak:.2f} GiB peak, {ratio}")
        return
    cases = (
        [("tiny-sd", 64, 4), ("tiny-sdxl", 64, 4)] if args.tiny else [("sd15", 512, 25), ("sdxl", 1024, 30)]
    )
    with tempfile.TemporaryDirectory() as scratch:
        for kind, size, steps in cases:
            folder = build(kind, Path(scratch) / kind)
            print(f"device: {resolve_device(args.device).describe()}")
            studio_vs_raw(folder, size, steps, args.device, args.repeats)
            switching_tabs(folder, args.device)
            if resolve_device(args.device).device.type == "cuda":  # a CPU has no out-of-memory error to force
                forced_out_of_memory(folder, args.device)
            if kind.endswith("sdxl"):
                budget_sequence(kind, folder, size, steps, args.device, args.budget)


if __name__ == "__main__":
    main()
