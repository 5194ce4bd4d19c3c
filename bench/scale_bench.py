"""Ray Serve replicas: the throughput of two replicas against one, and the latency Ray adds to a request.

    python bench/scale_bench.py            # the tiny test model, CPU replicas of one thread each

A local Ray cluster (`--ray local`) runs the studio's tasks in Serve replicas of one CPU (Ray gives each
one thread: OMP_NUM_THREADS=1) on torch, whose thread count that sets (OpenVINO would take every core
in each replica). Latency: the same text-to-image request made in this process (torch at one thread) and
through one replica, interleaved, medians of 15. Throughput: 12 requests sent at once to one replica, then
to two. Goals: two replicas ≥ 1.7× one; Ray's added latency ≤ 50 ms at the median. Name the CPU's
instruction set with the figures.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest  # noqa: E402
from studio.core.cache import ModelCache  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.presets import load_presets  # noqa: E402
from studio.core.requests import parse_request  # noqa: E402
from studio.core.settings import DEFAULT_PRESETS_DIR, Settings  # noqa: E402
from studio.ui import ray_replicas  # noqa: E402
from tests.tiny_models import build_sd  # noqa: E402

STEPS = 12  # a request of a few hundred milliseconds on one thread
LATENCY_ROUNDS = 15
BURST = 12


def main() -> None:
    torch.set_num_threads(1)  # this process's baseline runs on one thread, as each replica does
    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    model = build_sd(work / "model")
    presets = dataclasses.replace(load_presets(DEFAULT_PRESETS_DIR), default_model=str(model))
    settings = Settings(
        model=str(model), device="cpu", offline=True, outputs=work / "outputs", backend="torch",
        ray="local", replicas=1,
    )  # fmt: skip
    here = TextToImagePipeline(ModelCache(resolve_device("cpu"), offline=True, backend="torch"), presets)

    def request(seed: int) -> TextToImageRequest:
        return parse_request(TextToImageRequest, {"prompt": "a lighthouse", "steps": STEPS, "seed": seed})

    def timed(make) -> float:
        started = time.perf_counter()
        make()
        return time.perf_counter() - started

    run = ray_replicas.ray_replicas(settings, presets).generate
    list(run("txt2img", request(0))), here(request(0))  # warm: loaded, first call made
    local, remote = [], []
    for seed in range(1, LATENCY_ROUNDS + 1):
        local.append(timed(lambda seed=seed: here(request(seed))))
        remote.append(timed(lambda seed=seed: list(run("txt2img", request(seed)))))
    added_ms = (statistics.median(remote) - statistics.median(local)) * 1000

    throughput = {}
    for replicas in (1, 2):
        run = ray_replicas.ray_replicas(dataclasses.replace(settings, replicas=replicas), presets).generate

        def burst(seeds: range, run=run) -> None:
            with ThreadPoolExecutor(len(seeds)) as pool:
                list(pool.map(lambda seed: list(run("txt2img", request(seed))), seeds))

        burst(range(2 * replicas))  # warm: each replica has the model
        throughput[replicas] = BURST / timed(lambda burst=burst: burst(range(BURST)))
    ray_replicas.shut_down()

    print(f"tiny SD, 64², {STEPS} steps, torch at one thread a replica")
    print(
        f"in this process {statistics.median(local) * 1000:.0f} ms, through a replica "
        f"{statistics.median(remote) * 1000:.0f} ms: Ray adds {added_ms:.0f} ms (medians of {LATENCY_ROUNDS})"
    )
    for replicas, rate in throughput.items():
        print(f"{replicas} replica(s): {rate:.2f} images/s")
    print(f"two replicas / one: {throughput[2] / throughput[1]:.2f}×")


if __name__ == "__main__":
    main()
