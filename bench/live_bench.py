"""Live mode: keystroke-to-frame latency while a prompt is typed, and frames dropped, on the CPU defaults.

    python bench/live_bench.py --work /tmp/live-bench   # SD-Turbo's and SDXS-512's shapes; reuses --work
    python bench/live_bench.py --tiny                     # the same code paths on the tiny test model
    python bench/live_bench.py --device cuda              # on a GPU: frames a second, and the typing run

For each model, 20 edits are typed at 5 characters a second (one every 0.2 s) into a prompt whose first frame
is already made (models loaded, compiled and warm). Each keystroke is a request in its own thread, as an
API client sending every keystroke does, through the studio's own `LatestOnly` and `LivePipeline` at the
live size it picks for a CPU: a request still waiting when a newer one arrives is dropped (the page keeps
only its newest change while a frame is made, which comes to the same). A keystroke's latency is the time
until a frame that includes it is shown (its own, or a newer one's). Printed with it: the frame's FLOP count
(torch's FlopCounterMode on the UNet step, the text encoder and TAESD) over the machine's own rate (an
OpenVINO MatMul compiled as the studio compiles, so at the precision OpenVINO computes in here), which is
the fastest any frame could be. Then SDXS at its full 512² (a single frame, median of 3).

The models are the real architectures with random weights (../shared/bench/arch.py; SDXS-512's shape as in
cpu_bench.py), loaded by path through the studio's loader. Name the CPU's instruction set with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT.parent / "shared" / "bench"))

import torch  # noqa: E402
from cpu_bench import build_models, build_sdxs, presets_with  # noqa: E402

from pipelines.live import LivePipeline, LiveRequest, live_side  # noqa: E402
from studio.core.cache import ModelCache  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.latest_only import LatestOnly  # noqa: E402
from studio.core.openvino_backend import CPU_CONFIG, openvino  # noqa: E402
from studio.core.presets import load_presets  # noqa: E402
from studio.core.requests import parse_request  # noqa: E402

BASE_PROMPT = "a lighthouse on a cliff at dawn"
TYPED = " with waves crashing"  # 20 keystrokes
KEYSTROKE_S = 0.2  # 5 characters a second
SEED = 7


def live_presets(work: Path, models: dict[str, Path], taesd: Path) -> Path:
    """The shipped presets, TAESD and the live models pointing at the random-weight folders."""
    folder = presets_with(taesd, work / "live-presets")
    document = json.loads((folder / "models.json").read_text())
    for preset in document["models"]:
        if preset["name"] in models:
            preset["source"] = str(models[preset["name"]])
    (folder / "models.json").write_text(json.dumps(document))
    return folder


def machine_gflops() -> float:
    """GFLOP/s of a 2048² MatMul compiled by OpenVINO as the studio compiles (so at its precision here)."""
    import numpy as np

    ov = openvino()
    side = 2048
    left = ov.opset13.parameter([side, side], ov.Type.f32)
    right = ov.opset13.constant(np.random.default_rng(0).standard_normal((side, side), dtype=np.float32))
    product = ov.Model([ov.opset13.matmul(left, right, False, False)], [left])
    compiled = ov.Core().compile_model(product, "CPU", CPU_CONFIG)
    data = np.ones((side, side), dtype=np.float32)
    compiled(data)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        compiled(data)
        runs.append(time.perf_counter() - started)
    return 2 * side**3 / min(runs) / 1e9


def frame_gflop(pipeline: LivePipeline, model: str, side: int) -> float:
    """The FLOP of one unguided one-step frame at `side`²: text encoder, one UNet step, TAESD decode."""
    from diffusers import AutoencoderTiny, DiffusionPipeline
    from torch.utils.flop_counter import FlopCounterMode

    source = pipeline.presets.models[model].source
    pipe = DiffusionPipeline.from_pretrained(source)
    taesd = pipe.vae if isinstance(pipe.vae, AutoencoderTiny) else AutoencoderTiny.from_pretrained(
        pipeline.presets.decoder("sd").source
    )  # fmt: skip
    latent = side // 8
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        tokens = torch.zeros(1, 77, dtype=torch.long)
        states = pipe.text_encoder(tokens)[0]
        latents = pipe.unet(torch.zeros(1, 4, latent, latent), 999, states).sample
        taesd.decode(latents)
    return counter.get_total_flops() / 1e9


def typing_run(pipeline: LivePipeline, model: str) -> dict:
    """Type `TYPED` after `BASE_PROMPT`, one request per keystroke; the latency of each keystroke and the
    requests dropped."""
    turns = LatestOnly()
    shown: list[tuple[int, float]] = []  # (keystroke, when its frame was shown)
    dropped: list[int] = []
    times: list[float] = []

    def request(index: int, prompt: str) -> None:
        with turns.turn("typist") as turn:
            if not turn.mine:
                dropped.append(index)
                return
            started = time.perf_counter()
            values = {"prompt": prompt, "model": model, "seed": SEED}
            pipeline.frame(parse_request(LiveRequest, values))
            shown.append((index, time.perf_counter()))
            times.append(shown[-1][1] - started)

    pipeline.frame(parse_request(LiveRequest, {"prompt": BASE_PROMPT, "model": model, "seed": SEED}))
    start, threads, sent = time.perf_counter(), [], []
    for index in range(len(TYPED)):
        wait = start + index * KEYSTROKE_S - time.perf_counter()
        if wait > 0:
            threading.Event().wait(wait)  # the typist's pace
        sent.append(time.perf_counter())
        thread = threading.Thread(target=request, args=(index, BASE_PROMPT + TYPED[: index + 1]))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    latencies = [min(when for shown_index, when in shown if shown_index >= index) - sent[index]
                 for index in range(len(TYPED))]  # fmt: skip
    latencies.sort()
    return {
        "median": statistics.median(latencies),
        "p95": latencies[round(0.95 * (len(latencies) - 1))],
        "frames": len(shown),
        "dropped": len(dropped),
        "frame_s": statistics.median(times),
    }


def frames_per_second(pipeline: LivePipeline, model: str, frames: int = 10) -> float:
    """Frames made back to back, each with the next character typed (a new prompt each time)."""
    started = time.perf_counter()
    for index in range(frames):
        values = {"prompt": BASE_PROMPT + TYPED[: index + 1], "model": model, "seed": SEED}
        pipeline.frame(parse_request(LiveRequest, values))
    return frames / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny test model: checks the code paths")
    parser.add_argument("--work", help="keep the models and converted files here, and reuse them")
    parser.add_argument("--device", default="cpu", help="cpu (OpenVINO, the CPU's default) or cuda (torch)")
    args = parser.parse_args()
    on_cpu = args.device == "cpu"
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="live-bench-"))
    print(f"building models in {work} …", flush=True)
    turbo, taesd = build_models(work, args.tiny)
    models = {"sd-turbo": turbo}
    if not args.tiny:
        sdxs = work / "sdxs"
        models["sdxs"] = sdxs if (sdxs / "model_index.json").exists() else build_sdxs(sdxs)
    presets = load_presets(live_presets(work, models, taesd))
    device = resolve_device(args.device)
    cache = ModelCache.for_machine(device, offline=True, openvino_folder=work / "openvino")
    pipeline = LivePipeline(cache, presets)
    rate = machine_gflops() if on_cpu else None
    if rate:
        print(f"OpenVINO MatMul here: {rate:.0f} GFLOP/s; {torch.get_num_threads()} threads")
    print("| model | live size | frame GFLOP | bound s | frame s (median) | keystroke→frame median | p95 "
          "| frames | dropped | frames/s back to back |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in models:
        side = live_side(presets.models[name].resolution, "auto", on_cpu=on_cpu)
        result = typing_run(pipeline, name)
        gflop = frame_gflop(pipeline, name, side)
        bound = f"{gflop / rate:.2f}" if rate else "—"
        latency = f"{result['median']:.2f} s | {result['p95']:.2f} s"
        print(f"| {name} | {side}² | {gflop:.0f} | {bound} | {result['frame_s']:.2f} | {latency} "
              f"| {result['frames']} | {result['dropped']} | {frames_per_second(pipeline, name):.1f} |",
              flush=True)  # fmt: skip
    if "sdxs" in models and rate:
        full = []
        for _ in range(4):  # the first compiles the full size
            started = time.perf_counter()
            values = {"prompt": BASE_PROMPT, "model": "sdxs", "seed": SEED, "live_size": "full"}
            pipeline.frame(parse_request(LiveRequest, values))
            full.append(time.perf_counter() - started)
        gflop = frame_gflop(pipeline, "sdxs", 512)
        print(f"SDXS at 512²: {statistics.median(full[1:]):.2f} s a frame (median of 3; bound "
              f"{gflop / rate:.2f} s for {gflop:.0f} GFLOP)")  # fmt: skip


if __name__ == "__main__":
    main()
