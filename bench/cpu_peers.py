"""The studio beside the strongest thing a CPU user runs instead: Hugging Face optimum-intel's
`OVStableDiffusionPipeline` with static 512² shapes and its decoder swapped for TAESD converted to OpenVINO
(as FastSD CPU does), and raw diffusers as the common reference. SD-Turbo's shape at 512², 1 step, no CFG.

    python -m venv /tmp/optimum-venv
    /tmp/optimum-venv/bin/pip install "optimum-intel[openvino,diffusers]==2.2.0" "diffusers==0.39.*" \\
        "transformers==5.5.4" torch==2.14.1 torchvision==0.29.1
    python bench/cpu_peers.py --optimum-python /tmp/optimum-venv/bin/python [--raw] [--rounds 3] [--work DIR]
    python bench/cpu_peers.py --every-task   # peak RSS of a studio that ran every task, against raw
    python bench/cpu_peers.py --tiny [...]   # the same code paths on the test suite's tiny model (seconds)

Method (../shared/cpu-measurements.md): one persistent worker process per variant, each loading its
pipeline once (load time reported apart) and then asked over a pipe for one image at a time, timed inside
the worker; optimum-intel runs in its own virtualenv, since its pins differ from the studio's. A warm-up
round, then every variant in turn each round; a ratio is the median of the per-round ratios, so it holds
on a busy machine. Peak RSS is each worker's VmHWM. Name the CPU's instruction set with every figure:
OpenVINO computes in bf16 where the CPU has AVX-512 BF16 or AMX, in f32 on an AVX2 CPU.

`--every-task` runs text to image, Vary, inpaint, zoom-out and the creative upscale in one fresh studio
process (the OpenVINO files converted beforehand, as on a second start) and compares its peak RSS with raw
diffusers making one text-to-image image in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = 512
PROMPT = "a lighthouse on a cliff at dawn, waves crashing"


# -- workers: each runs in its own process, loads once, then makes an image per "image" line --------------


def own_peak_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))


def serve(make_image) -> None:
    """Answer the harness: an "image PROMPT" line makes one image of PROMPT and answers its seconds;
    "rss", the peak."""
    for line in sys.stdin:
        if line.startswith("image "):
            started = time.perf_counter()
            make_image(line.removeprefix("image ").strip())
            print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
        elif line.strip() == "rss":
            print(json.dumps({"peak_kib": own_peak_kib()}), flush=True)


def studio_worker(model: Path, taesd: Path, work: Path) -> None:
    """The studio's text to image with a CPU user's defaults (OpenVINO where installed, TAESD)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import cpu_bench

    from pipelines.text_to_image import TextToImagePipeline
    from studio.core.cache import ModelCache
    from studio.core.devices import resolve_device
    from studio.core.presets import load_presets

    cache = ModelCache.for_machine(resolve_device("cpu"), offline=True, openvino_folder=work / "openvino")
    pipeline = TextToImagePipeline(cache, load_presets(cpu_bench.presets_with(taesd, work / "presets")))
    serve(lambda prompt: cpu_bench.studio_run(pipeline, model, SIZE, 1, keep_prompts=True, prompt=prompt))


def raw_worker(model: Path) -> None:
    """Raw diffusers, fp32, its full VAE: what a newcomer's script does."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)

    def image(prompt: str) -> None:
        with torch.no_grad():
            pipe(prompt, num_inference_steps=1, guidance_scale=0.0, height=SIZE, width=SIZE)

    serve(image)


def optimum_worker(model: Path, taesd: Path, work: Path) -> None:
    """optimum-intel, exported to OpenVINO, reshaped static to 512² and one image (no CFG), its decoder
    TAESD converted to OpenVINO at 512²."""
    import openvino as ov
    import torch
    from diffusers import AutoencoderTiny
    from optimum.intel import OVStableDiffusionPipeline
    from optimum.intel.openvino.modeling_diffusion import OVModelVae, OVModelVaeDecoder

    exported = work / "optimum-ir"
    if not (exported / "model_index.json").exists():
        OVStableDiffusionPipeline.from_pretrained(model, export=True, compile=False).save_pretrained(exported)
    pipe = OVStableDiffusionPipeline.from_pretrained(exported, compile=False)
    # Static shapes, as FastSD CPU runs it; reshape() would set batch 2 for guidance, which turbo skips.
    pipe.reshape(batch_size=1, height=SIZE, width=SIZE, num_images_per_prompt=1)
    unet = pipe.unet.model
    shapes = {}
    for unet_input in unet.inputs:
        shape = unet_input.get_partial_shape()
        if shape.rank.get_length() and shape[0].is_static and shape[0].get_length() == 2:
            shape[0] = 1  # one image, no negative half
        shapes[unet_input.get_any_name()] = shape
    unet.reshape(shapes)
    decoder_file = work / "optimum-taesd" / "openvino_model.xml"
    if not decoder_file.exists():
        tiny = AutoencoderTiny.from_pretrained(taesd).eval().requires_grad_(False)

        class Decode(torch.nn.Module):
            def forward(self, latent_sample):
                return tiny.decode(latent_sample).sample

        latents = torch.zeros(1, 4, SIZE // 8, SIZE // 8)
        with torch.no_grad():
            converted = ov.convert_model(Decode(), example_input=latents)
        converted.inputs[0].get_tensor().set_names({"latent_sample"})  # the names optimum calls it by
        converted.outputs[0].get_tensor().set_names({"sample"})
        ov.save_model(converted, decoder_file)
    pipe.vae_decoder = OVModelVaeDecoder(ov.Core().read_model(decoder_file), pipe, "vae_decoder")
    pipe.vae = OVModelVae(decoder=pipe.vae_decoder, encoder=pipe.vae_encoder)  # what the call decodes with
    pipe.compile()

    def image(prompt: str) -> None:
        pipe(prompt, num_inference_steps=1, guidance_scale=0.0, height=SIZE, width=SIZE)

    serve(image)


# -- the harness -----------------------------------------------------------------------------------------


class Worker:
    def __init__(self, name: str, python: str, role: str, model: Path, taesd: Path, work: Path) -> None:
        self.name = name
        command = [python, __file__, "--worker", role, "--model", str(model), "--taesd", str(taesd)]
        command += ["--tiny"] if SIZE != 512 else []
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [*command, "--work", str(work)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.image()  # loads, converts where it must, and makes a first image
        self.load_seconds = time.perf_counter() - started

    def ask(self, line: str) -> dict:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"{self.name}: the worker ended (see its output above)")
        return json.loads(answer)

    def image(self, prompt: str = PROMPT) -> float:
        return self.ask(f"image {prompt}")["seconds"]

    def close(self) -> float:
        """Its peak RSS in GiB, and then it ends."""
        peak = self.ask("rss")["peak_kib"] / 2**20
        self.process.stdin.close()
        self.process.wait(timeout=60)
        return peak


def instruction_set() -> str:
    flags = set(Path("/proc/cpuinfo").read_text().split())
    for name, flag in (("AMX", "amx_tile"), ("AVX-512 BF16", "avx512_bf16"), ("AVX-512", "avx512f")):
        if flag in flags:
            return name
    return "AVX2" if "avx2" in flags else "no AVX2"


def compare(args: argparse.Namespace, model: Path, taesd: Path, work: Path) -> None:
    roles = {"the studio's CPU defaults": (sys.executable, "studio")}
    if args.optimum_python:
        roles["optimum-intel + OpenVINO TAESD (static 512²)"] = (args.optimum_python, "optimum")
    if args.raw:  # a third process as large as the others: on a small machine, leave it out
        roles["raw diffusers fp32 + VAE"] = (sys.executable, "raw")
    workers = []
    for name, (python, role) in roles.items():
        print(f"starting {name} …", flush=True)
        workers.append(Worker(name, python, role, model, taesd, work))
        print(f"  loaded, converted and warmed up in {workers[-1].load_seconds:.0f} s", flush=True)
    times: dict[str, list[float]] = {worker.name: [] for worker in workers}
    for round_ in range(args.rounds):
        # A new prompt each round (the same for every variant), unless asked: the studio keeps the
        # embeddings of a prompt it made before, which a repeated prompt would time instead of the encoder
        prompt = PROMPT if args.repeat_prompt else f"{PROMPT}, study {round_ + 1}"
        for worker in workers:
            times[worker.name].append(worker.image(prompt))
        print(f"round {round_ + 1} done", flush=True)
    peaks = {worker.name: worker.close() for worker in workers}
    reference = list(times)[min(1, len(times) - 1)]  # optimum-intel where it ran

    def ratio(name: str) -> float:
        """How many times faster than the reference (per-round ratios' median)."""
        return statistics.median(r / v for r, v in zip(times[reference], times[name], strict=True))

    prompts = "the same prompt every round" if args.repeat_prompt else "a new prompt every round"
    print(f"\n{SIZE}², 1 step, {args.rounds} rounds, {prompts}, CPU {instruction_set()}")
    print(f"| variant | min s | median s | × {reference.split(' (')[0]} | peak RSS |")
    print("|---|---|---|---|---|")
    for name, values in times.items():
        shown = [min(values), statistics.median(values), ratio(name)]
        print(f"| {name} | " + " | ".join(f"{value:.2f}" for value in shown) + f" | {peaks[name]:.1f} GiB |")


def every_task(model: Path, taesd: Path, work: Path) -> None:
    """Peak RSS of one studio that ran every diffusion task, against raw diffusers' text to image."""
    code = f"""
import sys; sys.path.insert(0, {str(ROOT / "bench")!r}); sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
import cpu_peers
cpu_peers.SIZE = {SIZE}
cpu_peers.run_every_task(Path({str(model)!r}), Path({str(taesd)!r}), Path({str(work)!r}))
print(cpu_peers.own_peak_kib())
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # converts, first start
    studio = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    raw = Worker("raw", sys.executable, "raw", model, taesd, work).close()
    ours = int(studio.stdout.split()[-1]) / 2**20
    print(f"peak RSS, CPU {instruction_set()}: raw diffusers text to image {raw:.2f} GiB; a studio that ran "
          f"every task {ours:.2f} GiB ({ours / raw - 1:+.0%})")  # fmt: skip


def run_every_task(model: Path, taesd: Path, work: Path) -> None:
    import cpu_bench
    from PIL import Image

    from pipelines.registry import TASKS
    from studio.core.cache import ModelCache
    from studio.core.devices import resolve_device
    from studio.core.presets import load_presets
    from studio.core.requests import parse_request

    cache = ModelCache.for_machine(resolve_device("cpu"), offline=True, openvino_folder=work / "openvino")
    presets = load_presets(cpu_bench.presets_with(taesd, work / "presets"))
    photo = Image.effect_mandelbrot((SIZE, SIZE), (-2.0, -1.25, 0.75, 1.25), 80).convert("RGB")
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (SIZE // 4, SIZE // 4, SIZE * 3 // 4, SIZE * 3 // 4))
    common = {"prompt": PROMPT, "model": str(model), "steps": 2, "guidance_scale": 0, "previews": "off"}
    runs = {
        "txt2img": {"steps": 1},
        "img2img": {"image": photo, "strength": 0.5},
        "inpaint": {"image": photo, "mask": mask},
        "outpaint": {"image": photo.resize((SIZE // 2, SIZE // 2)), "direction": "zoom_out_2"},
        "upscale": {"image": photo.resize((SIZE // 2, SIZE // 2)), "mode": "creative", "scale": 2,
                    "upscaler": "Lanczos (no model)"},
    }  # fmt: skip
    for task, values in runs.items():
        pipeline = TASKS[task](cache, presets)
        request = parse_request(pipeline.request_type, {**common, **values})
        list(pipeline.generate(request))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--optimum-python", help="the python of a virtualenv with optimum-intel")
    parser.add_argument("--work", help="keep the models and converted files here, and reuse them")
    parser.add_argument("--raw", action="store_true", help="raw diffusers too (a third large process)")
    parser.add_argument(
        "--repeat-prompt",
        action="store_true",
        help="the same prompt every round (the studio keeps its embeddings)",
    )
    parser.add_argument("--every-task", action="store_true", help="peak RSS of a studio that ran every task")
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny test model at 64²: checks the code paths"
    )
    parser.add_argument("--worker", choices=["studio", "raw", "optimum"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--taesd", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global SIZE
    SIZE = 64 if args.tiny else SIZE
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="cpu-peers-"))
    if args.worker:
        sys.path.insert(0, str(ROOT))
        model, taesd = Path(args.model), Path(args.taesd)
        {"studio": lambda: studio_worker(model, taesd, work), "raw": lambda: raw_worker(model),
         "optimum": lambda: optimum_worker(model, taesd, work)}[args.worker]()  # fmt: skip
        return
    sys.path.insert(0, str(ROOT / "bench"))
    import cpu_bench

    model, taesd = cpu_bench.build_models(work, tiny=args.tiny)
    print(f"models in {work}", flush=True)
    if args.every_task:
        every_task(model, taesd, work)
    else:
        compare(args, model, taesd, work)


if __name__ == "__main__":
    main()
