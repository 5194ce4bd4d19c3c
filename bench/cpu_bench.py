"""CPU speed: raw diffusers against the studio, each lever on and off, SD-Turbo's shape at 512², 1 step.

    python bench/cpu_bench.py                 # 1 image: warm-up + 3 rounds; 4 images: 3 rounds; peak RSS
    python bench/cpu_bench.py --rounds 5
    python bench/cpu_bench.py --tiny          # the same code paths on the test suite's tiny model (seconds)
    python bench/cpu_bench.py --tasks         # Vary Subtle, inpaint, a two-chunk prompt, against raw

The models are the real architectures with random weights (../shared/bench/arch.py: SD 2.1, the shape of
SD-Turbo; diffusers' `AutoencoderTiny()`, the shape of TAESD), saved in diffusers layout and loaded by path
through the studio's loader: speed does not depend on the weights' values. Every variant runs in this one
process, interleaved round by round (as ../shared/cpu-measurements.md), so the ratios hold even when the
machine is busy: each ratio is the median of the per-round ratios. Peak RSS is measured apart, for raw
diffusers and for the studio's CPU defaults, each in a fresh process that makes one image (the OpenVINO
files already converted, as on a second start).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "shared" / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipelines.parts.conditioning import PromptMemo  # noqa: E402
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest  # noqa: E402
from studio.core.cache import ModelCache  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.openvino_backend import (  # noqa: E402
    ConvertedModels,
    choose_backend,  # noqa: E402
    openvino_installed,
)
from studio.core.presets import load_presets  # noqa: E402
from studio.core.requests import parse_request  # noqa: E402
from studio.core.settings import DEFAULT_PRESETS_DIR  # noqa: E402

PROMPT = "a lighthouse on a cliff at dawn, waves crashing"
SEED = 7


def build_models(folder: Path, tiny: bool) -> tuple[Path, Path]:
    """The base model and a TAESD-shaped autoencoder, saved in diffusers layout under `folder`."""
    from diffusers import AutoencoderTiny

    model, taesd = folder / "model", folder / "taesd"
    if (model / "model_index.json").exists() and (taesd / "config.json").exists():
        return model, taesd  # --work: built by an earlier run
    if tiny:
        sys.path.insert(0, str(ROOT))
        from tests.tiny_models import build_sd, build_tiny_autoencoder

        build_sd(model)
        build_tiny_autoencoder(taesd)
    else:
        from arch import sd21

        torch.manual_seed(0)
        sd21().save_pretrained(model)
        AutoencoderTiny().save_pretrained(taesd)
    return model, taesd


def build_sdxs(folder: Path) -> Path:
    """The shape of IDKiro/sdxs-512-dreamshaper: a UNet without its middle block and fewer layers, CLIP-L,
    and TAESD as its own autoencoder (the UNet's config as far as its weight file's size confirms it)."""
    from arch import clip_text, tokenizer
    from diffusers import (
        AutoencoderTiny,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, block_out_channels=(320, 640, 1280), layers_per_block=1, cross_attention_dim=768,
        attention_head_dim=8, mid_block_type=None,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    )  # fmt: skip
    pipe = StableDiffusionPipeline(
        unet=unet, vae=AutoencoderTiny(), text_encoder=clip_text(768, 12, 12, 3072), tokenizer=tokenizer(),
        scheduler=EulerDiscreteScheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(folder)
    return folder


def presets_with(taesd: Path, folder: Path) -> Path:
    shutil.copytree(DEFAULT_PRESETS_DIR, folder, dirs_exist_ok=True)
    decoders = json.loads((folder / "decoders.json").read_text())
    for decoder in decoders["decoders"]:
        decoder["source"] = str(taesd)
    (folder / "decoders.json").write_text(json.dumps(decoders))
    return folder


def forgetting_prompts(pipeline: TextToImagePipeline) -> TextToImagePipeline:
    """`pipeline` with no prompt embeddings kept from its earlier runs: the studio keeps a prompt's
    embeddings for its next run, and these figures are for a prompt encoded as a new one is (raw diffusers
    encodes every time)."""
    pipeline.prompts = PromptMemo()
    return pipeline


def studio_run(
    pipeline: TextToImagePipeline,
    model: Path,
    size: int,
    images: int,
    *,
    keep_prompts: bool = False,
    **values,
) -> tuple:
    if not keep_prompts:
        forgetting_prompts(pipeline)
    previews: list = []
    request = parse_request(
        TextToImageRequest,
        {"prompt": PROMPT, "model": str(model), "steps": 1, "guidance_scale": 0, "sampler": "Euler",
         "seed": SEED, "num_images": images, "previews": "off", **values},
    )  # fmt: skip
    results = list(pipeline.generate(request, preview=previews.append))
    return [r.image for r in results], len(previews)


def raw_pipe(model: Path, *, compiled: bool = False) -> Callable:
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if compiled:
        pipe.unet = torch.compile(pipe.unet)

    def run(size: int, images: int) -> tuple:
        generator = torch.Generator("cpu").manual_seed(SEED)
        out = pipe(PROMPT, num_inference_steps=1, guidance_scale=0.0, height=size, width=size,
                   num_images_per_prompt=images, generator=generator)  # fmt: skip
        return out.images, 0

    return run


def timed(run: Callable[[], tuple]) -> tuple[float, tuple]:
    started = time.perf_counter()
    with torch.no_grad():
        result = run()
    return time.perf_counter() - started, result


def peak_rss(which: str, model: Path, presets: Path, converted: Path, size: int) -> float:
    """GiB of peak resident memory of a fresh process making one image `which` way."""
    code = f"""
import sys, resource; sys.argv = ['cpu_bench']
sys.path.insert(0, {str(ROOT / "bench")!r})
import cpu_bench as b
from pathlib import Path
b.one_image({which!r}, Path({str(model)!r}), Path({str(presets)!r}), Path({str(converted)!r}), {size})
print(b.own_peak_kib())
"""
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(output.stdout.strip().splitlines()[-1]) / 2**20


def own_peak_kib() -> int:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))


def one_image(which: str, model: Path, presets: Path, converted: Path, size: int) -> None:
    if which == "raw":
        raw_pipe(model)(size, 1)
        return
    backend, _ = choose_backend("auto", resolve_device("cpu"), installed=openvino_installed())
    cache = ModelCache(
        resolve_device("cpu"), offline=True, backend=backend, converted=ConvertedModels(converted)
    )
    studio_run(TextToImagePipeline(cache, load_presets(presets)), model, size, 1)


PHRASES = ["granite rocks", "gulls", "storm clouds", "rain on the lantern glass", "a keeper's cottage"]


def two_chunk_prompt(tokenizer) -> str:
    """PROMPT grown phrase by phrase to just past CLIP's 77 tokens: two chunks for compel, by this model's
    own tokenizer (the benchmark models' is character-level, a real CLIP's is not)."""
    prompt, phrases = PROMPT, iter(PHRASES * 20)
    while len(tokenizer(prompt).input_ids) <= tokenizer.model_max_length:
        prompt = f"{prompt}, {next(phrases)}"
    return prompt


VARY_STEPS = 4  # at Vary Subtle's strength (0.35), 2 of them run: ceil(4 × 0.35)


def task_comparison(model: Path, presets_dir: Path, converted: Path, size: int, rounds: int) -> None:
    """Vary (Subtle), inpaint and a two-chunk prompt with the studio's CPU defaults, each against raw
    diffusers fp32 doing the same steps at the same strength, interleaved round by round."""
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionImg2ImgPipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
    )
    from PIL import Image

    from pipelines.image_to_image import ImageToImagePipeline, ImageToImageRequest
    from pipelines.inpaint import InpaintPipeline, InpaintRequest

    presets = load_presets(presets_dir)
    strength = presets.variations["Subtle"].strength
    photo = Image.effect_mandelbrot((size, size), (-2.0, -1.25, 0.75, 1.25), 80).convert("RGB")
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (size // 4, size // 4, size * 3 // 4, size * 3 // 4))
    backend, _ = choose_backend("auto", resolve_device("cpu"), installed=openvino_installed())
    cache = ModelCache(
        resolve_device("cpu"), offline=True, backend=backend, converted=ConvertedModels(converted)
    )
    text = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    text.scheduler = EulerDiscreteScheduler.from_config(text.scheduler.config)
    raws = {
        kind: kind.from_pipe(text)
        for kind in (StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline)
    }
    for pipe in (text, *raws.values()):
        pipe.set_progress_bar_config(disable=True)
    long_prompt = two_chunk_prompt(text.tokenizer)
    common = {"model": str(model), "sampler": "Euler", "guidance_scale": 0, "seed": SEED, "previews": "off"}

    def studio(task: type, request_type: type, **values) -> Callable[[], tuple]:
        pipeline = forgetting_prompts(task(cache, presets))
        request = parse_request(request_type, {**common, "prompt": PROMPT, **values})
        return lambda: ([r.image for r in pipeline(request)], 0)

    def raw(pipe, **values) -> Callable[[], tuple]:
        def run() -> tuple:
            generator = torch.Generator("cpu").manual_seed(SEED)
            arguments = {"prompt": PROMPT, "guidance_scale": 0.0, "generator": generator, **values}
            return pipe(**arguments).images, 0

        return run

    vary = {"image": photo, "strength": strength, "steps": VARY_STEPS}
    raw_vary = {"image": photo, "strength": strength, "num_inference_steps": VARY_STEPS}
    inpaint = {"image": photo, "mask": mask, "strength": 1.0, "steps": 2, "mask_blur": 0}
    raw_inpaint = {"image": photo, "mask_image": mask, "strength": 1.0, "num_inference_steps": 2}
    square = {"height": size, "width": size}
    variants = {
        "Vary Subtle, raw diffusers": raw(raws[StableDiffusionImg2ImgPipeline], **raw_vary),
        "Vary Subtle, studio CPU defaults": studio(ImageToImagePipeline, ImageToImageRequest, **vary),
        "inpaint, raw diffusers": raw(raws[StableDiffusionInpaintPipeline], **raw_inpaint, **square),
        "inpaint, studio CPU defaults": studio(InpaintPipeline, InpaintRequest, **inpaint),
        "short prompt, studio CPU defaults": studio(TextToImagePipeline, TextToImageRequest, steps=1),
        "2-chunk prompt, studio CPU defaults": studio(
            TextToImagePipeline, TextToImageRequest, steps=1, prompt=long_prompt
        ),
        "2-chunk prompt, raw diffusers (cut at 77 tokens)": raw(
            text, prompt=long_prompt, num_inference_steps=1, **square
        ),
    }  # fmt: skip
    started = time.perf_counter()
    for run in variants.values():  # warm-up: converts what the tasks need the first time
        run()
    print(f"warm-up (conversions included, first time): {time.perf_counter() - started:.0f} s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds):
        for name, run in variants.items():
            times[name].append(timed(run)[0])
        print(f"round {round_ + 1} done", flush=True)

    def ratio(slower: str, faster: str) -> float:
        return statistics.median(s / f for s, f in zip(times[slower], times[faster], strict=True))

    print(f"\n{size}², {rounds} rounds, {torch.get_num_threads()} threads, backend {backend}")
    for name, values in times.items():
        print(f"{name:50} min {min(values):7.2f} s  median {statistics.median(values):7.2f} s")
    for task in ("Vary Subtle", "inpaint"):
        faster = ratio(f"{task}, raw diffusers", f"{task}, studio CPU defaults")
        print(f"{task}: studio {faster:.2f}× faster than raw")
    chunked = ratio("2-chunk prompt, studio CPU defaults", "short prompt, studio CPU defaults")
    print(f"2-chunk prompt: {chunked:.2f}× a short prompt's time")


def compile_comparison(model: Path, size: int, rounds: int) -> None:
    """torch.compile (inductor) on the UNet against eager, in raw diffusers: the lever the studio would
    pull on a CPU if the figures asked for it."""
    eager, compiled = raw_pipe(model), raw_pipe(model, compiled=True)
    started = time.perf_counter()
    timed(lambda: compiled(size, 1))
    print(f"torch.compile: first call (compiling) {time.perf_counter() - started:.0f} s", flush=True)
    timed(lambda: eager(size, 1))
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(rounds):
        times["eager"].append(timed(lambda: eager(size, 1))[0])
        times["compiled"].append(timed(lambda: compiled(size, 1))[0])
    ratio = statistics.median(e / c for e, c in zip(times["eager"], times["compiled"], strict=True))
    for name, values in times.items():
        median = statistics.median(values)
        print(f"raw diffusers, UNet {name}: min {min(values):.2f} s, median {median:.2f} s")
    print(f"torch.compile vs eager, end to end: {ratio:.3f}× as fast")


def print_peak_rss(model: Path, presets: Path, converted: Path, size: int) -> None:
    if openvino_installed() and not any((converted / "compiled").glob("*")):
        peak_rss("studio", model, presets, converted, size)  # converts: the figure is a second start's
    raw_rss = peak_rss("raw", model, presets, converted, size)
    studio_rss = peak_rss("studio", model, presets, converted, size)
    print(f"\npeak RSS, one image in a fresh process: raw {raw_rss:.2f} GiB, "
          f"studio CPU defaults {studio_rss:.2f} GiB ({studio_rss / raw_rss - 1:+.0%})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="the tiny test model: checks the code paths")
    parser.add_argument("--no-four", action="store_true", help="skip the 4-image comparison")
    parser.add_argument("--sdxs", action="store_true", help="also time the SDXS-512 preset's shape")
    parser.add_argument("--work", help="keep the models and converted files in this folder, and reuse them")
    parser.add_argument("--rss-only", action="store_true", help="only the peak RSS (best with --work)")
    parser.add_argument("--compile", action="store_true", help="only torch.compile's UNet against eager")
    parser.add_argument("--tasks", action="store_true", help="only Vary, inpaint and a two-chunk prompt")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    size = 64 if args.tiny else 512
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cpu-bench-"))
    print(f"building models in {work} …", flush=True)
    model, taesd = build_models(work, args.tiny)
    presets_dir = presets_with(taesd, work / "presets")
    presets = load_presets(presets_dir)
    converted = work / "openvino"
    if args.rss_only:
        print_peak_rss(model, presets_dir, converted, size)
        return
    if args.compile:
        compile_comparison(model, size, args.rounds)
        return
    if args.tasks:
        task_comparison(model, presets_dir, converted, size, args.rounds)
        return
    device = resolve_device("cpu")
    torch_cache = ModelCache(device, offline=True)
    on_torch = TextToImagePipeline(torch_cache, presets)
    have_openvino = openvino_installed()
    if have_openvino:
        ov_cache = ModelCache(device, offline=True, backend="openvino", converted=ConvertedModels(converted))
        on_openvino = TextToImagePipeline(ov_cache, presets)
    raw = raw_pipe(model)

    def studio(pipeline: TextToImagePipeline, images: int = 1, **values) -> Callable[[], tuple]:
        return lambda: studio_run(pipeline, model, size, images, **values)

    variants: dict[str, Callable[[], tuple]] = {
        "raw diffusers (torch, VAE)": lambda: raw(size, 1),
        "studio, torch, full VAE": studio(on_torch, decoder="full"),
        "studio, torch, TAESD": studio(on_torch, decoder="fast"),
        "studio, torch, TAESD, 2 steps, previews off": studio(on_torch, decoder="fast", steps=2),
        "studio, torch, TAESD, 2 steps, previews TAESD": studio(
            on_torch, decoder="fast", steps=2, previews="taesd"
        ),
        "studio, torch, TAESD, 2 steps, previews approximate": studio(
            on_torch, decoder="fast", steps=2, previews="approximate"
        ),
    }
    if have_openvino:
        variants["studio, OpenVINO, full VAE"] = studio(on_openvino, decoder="full")
        variants["studio, OpenVINO, TAESD (CPU defaults)"] = studio(on_openvino, decoder="fast")
        started = time.perf_counter()
        for decoder in ("full", "fast"):
            studio_run(on_openvino, model, size, 1, decoder=decoder)
        print(
            f"OpenVINO conversion and compile, first time: {time.perf_counter() - started:.0f} s", flush=True
        )
    defaults = "studio, OpenVINO, TAESD (CPU defaults)" if have_openvino else "studio, torch, TAESD"
    if args.sdxs and not args.tiny:
        sdxs = build_sdxs(work / "sdxs")
        pipeline = on_openvino if have_openvino else on_torch
        variants["SDXS-512 shape, studio CPU defaults"] = lambda: studio_run(pipeline, sdxs, size, 1)
        studio_run(pipeline, sdxs, size, 1)  # converted before the rounds

    times: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, tuple] = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for name, run in variants.items():
            seconds, outputs[name] = timed(run)
            if round_:
                times[name].append(seconds)
        print(f"round {round_} done", flush=True)

    raw_times = times["raw diffusers (torch, VAE)"]
    print(
        f"\n1 image, {size}², 1 step (2 where said), {args.rounds} rounds, {torch.get_num_threads()} threads"
    )
    print(f"{'variant':55} {'min s':>7} {'median s':>9} {'× faster than raw':>18} {'previews':>9}")
    for name, values in times.items():
        ratio = statistics.median(r / v for r, v in zip(raw_times, values, strict=True))
        previews = outputs[name][1]
        print(f"{name:55} {min(values):7.2f} {statistics.median(values):9.2f} {ratio:18.2f} {previews:9}")

    def ratio_of(slower: str, faster: str) -> float:
        return statistics.median(s / f for s, f in zip(times[slower], times[faster], strict=True))

    full = np.asarray(outputs["studio, torch, full VAE"][0][0], dtype=np.int16)
    raw_image = np.asarray(outputs["raw diffusers (torch, VAE)"][0][0], dtype=np.int16)
    same = ratio_of("studio, torch, full VAE", "raw diffusers (torch, VAE)")
    print(f"\nstudio, full VAE, torch vs raw: {same:.3f}× the time, "
          f"max pixel difference {int(np.abs(full - raw_image).max())}")  # fmt: skip
    for previews in ("TAESD", "approximate"):
        on = f"studio, torch, TAESD, 2 steps, previews {previews}"
        slower = ratio_of(on, "studio, torch, TAESD, 2 steps, previews off")
        print(f"previews {previews} vs off (2 steps): {slower:.3f}× the time")
    if have_openvino:
        ov = np.asarray(outputs[defaults][0][0], dtype=np.int16)
        fast = np.asarray(outputs["studio, torch, TAESD"][0][0], dtype=np.int16)
        print(f"OpenVINO vs torch (TAESD): max pixel difference {int(np.abs(ov - fast).max())}")
    print(f"CPU defaults ({defaults}) vs raw: {ratio_of('raw diffusers (torch, VAE)', defaults):.2f}× faster")

    if not args.no_four:
        four = {
            "raw diffusers, 4 images (one batch)": lambda: raw(size, 4),
            f"{defaults}, 4 images": studio(on_openvino if have_openvino else on_torch, 4, decoder="fast"),
        }
        four_times: dict[str, list[float]] = {name: [] for name in four}
        for _ in range(args.rounds):
            for name, run in four.items():
                four_times[name].append(timed(run)[0])
        raw4, ours4 = four_times.values()
        print(f"\n4 images: raw min {min(raw4):.2f} s median {statistics.median(raw4):.2f} s; "
              f"studio min {min(ours4):.2f} s median {statistics.median(ours4):.2f} s; "
              f"{statistics.median(r / o for r, o in zip(raw4, ours4, strict=True)):.2f}× faster"
              )  # fmt: skip

    print_peak_rss(model, presets_dir, converted, size)
    print(f"this process's peak RSS: {own_peak_kib() / 2**20:.2f} GiB")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
