"""What steering by a taste profile (`--p`) costs: one image the best of k drafts, against plain runs.

    python bench/taste_bench.py --work /tmp/taste-bench   # SD-Turbo's shape (SD 2.1), 512², 1 step
    python bench/taste_bench.py --tiny                      # the same code paths on the tiny test model
    python bench/taste_bench.py --backend torch             # a GPU's path on the CPU: runs decode in full

On the CPU defaults (OpenVINO, TAESD), interleaved round by round in one process (as
../shared/cpu-measurements.md): a plain image decoded fast (the default), a plain image decoded by the full
VAE, and `--p` with k = 2 and 4 drafts. The goal: `--p` costs at most k drafts' denoising and one full decode,
that is (k − 1) × the plain fast image + the plain full-decode image. Also printed: what the profile's fit
and its scoring take (40 rated pairs; one draft scored). Name the CPU's instruction set with every figure.

With `--backend torch` the steered runs decode in full, as a GPU's do by default: their drafts are decoded
by TAESD and only the chosen one by the full VAE, which is what keeps them within the bound.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT.parent / "shared" / "bench"))

from cpu_bench import build_models, presets_with, studio_run  # noqa: E402

from pipelines.text_to_image import TextToImagePipeline  # noqa: E402
from studio.core.cache import ModelCache  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.presets import load_presets  # noqa: E402
from studio.core.taste import PAIRS_WANTED  # noqa: E402
from tests.unit.test_taste import picture, rated_profile, redness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, help="folder for the models and converted files (kept)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model instead of SD-Turbo's shape")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["auto", "torch"], default="auto")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="taste-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model, taesd = build_models(work, args.tiny)
    size = 64 if args.tiny else 512
    presets = load_presets(presets_with(taesd, work / "presets"))
    cache = ModelCache.for_machine(
        resolve_device("cpu"), offline=True, backend=args.backend, openvino_folder=work / "openvino"
    )
    pipeline = TextToImagePipeline(cache, presets)

    started = time.perf_counter()
    profile = rated_profile(redness, PAIRS_WANTED, seed=1)
    fit_ms = (time.perf_counter() - started) * 1000 / PAIRS_WANTED  # per pair rated: its look and a refit
    image = picture(random.Random(2))
    started = time.perf_counter()
    for _ in range(20):
        profile.score(image)
    score_ms = (time.perf_counter() - started) * 1000 / 20

    steered = "full" if args.backend == "torch" else "fast"  # what the steered runs decode with
    variants = {
        "plain, fast decoder": {"decoder": "fast"},
        "plain, full VAE": {"decoder": "full"},
        "--p, k = 2": {"profile": profile.code, "taste": profile, "drafts": 2, "decoder": steered},
        "--p, k = 4": {"profile": profile.code, "taste": profile, "drafts": 4, "decoder": steered},
    }
    for values in variants.values():  # warm: converted, compiled, loaded
        studio_run(pipeline, model, size, 1, **values)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, values in variants.items():
            started = time.perf_counter()
            studio_run(pipeline, model, size, 1, **values)
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(runs) for name, runs in times.items()}
    print(f"backend {cache.backend}, {size}², 1 step, median of {args.rounds} interleaved rounds; "
          f"the steered runs decode {steered}")  # fmt: skip
    print(f"a rated pair (its looks and a refit): {fit_ms:.1f} ms; scoring a draft: {score_ms:.1f} ms")
    for name, seconds in median.items():
        print(f"{name:22s} {seconds:7.2f} s")
    for k in (2, 4):
        bound = (k - 1) * median["plain, fast decoder"] + median["plain, full VAE"]
        cost = median[f"--p, k = {k}"]
        print(f"--p k = {k}: {cost:.2f} s against the goal's bound {bound:.2f} s ({cost / bound:.2f}×)")


if __name__ == "__main__":
    main()
