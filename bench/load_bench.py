"""Many visitors at once: gradio_client clients sending text-to-image requests together to one studio.

    python bench/load_bench.py                  # 16 clients × 5 requests, the default queue (64 waiting)
    python bench/load_bench.py --queue-size 8   # a small queue: requests over it must be refused as busy
    python bench/load_bench.py --quick          # 4 clients × 2 requests, to check the script

The studio is the real app serving the tests' tiny random model on CPU (bench/tiny_studio.py). Each client
is its own `Client` in its own thread; all start together and send their requests one after another, each
with the client's own prompt and seeds. Every request must succeed or be refused with Gradio's "queue is
full" message. Every image must carry the seed and prompt its client asked for (in the answer and in the
PNG's parameters) and have the pixels of the same request made alone beforehand. Exit status 1 on a
mismatch or on any failure that is not a clear refusal.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from tiny_studio import launch, work_folder

BUSY = "queue is full"  # what gradio_client raises, lower-cased, when the studio's queue is full


@dataclass
class Outcome:
    client: int
    request: int
    seconds: float
    kind: str  # "ok", "refused", "failed"
    detail: str = ""


def prompt_of(client: int) -> str:
    return f"a lighthouse drawn for client {client}"


def seed_of(client: int, request: int) -> int:
    return 1000 * (client + 1) + request


def txt2img(client, prompt: str, seed: int, steps: int):
    return client.predict(prompt=prompt, seed=seed, steps=steps, api_name="/txt2img")


def pixels(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


def mismatch(answer, prompt: str, seed: int, reference: np.ndarray) -> str:
    """What is wrong with `answer` (images, parameters) for this request; "" when nothing is."""
    from studio.core.metadata import read_parameters

    images, parameters = answer
    if len(images) != 1 or len(parameters) != 1:
        return f"{len(images)} images and {len(parameters)} parameters, not 1"
    asked = (seed, prompt)
    answered = (parameters[0]["seed"], parameters[0]["user_prompt"])
    embedded = read_parameters(images[0]["image"])
    in_png = (embedded.seed, embedded.user_prompt) if embedded else None
    if answered != asked or in_png != asked:
        return f"asked {asked}, answer says {answered}, PNG says {in_png}"
    if not np.array_equal(pixels(images[0]["image"]), reference):
        return f"seed {seed}: pixels differ from the same request made alone"
    return ""


def main() -> int:
    from studio.core.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5, help="per client")
    parser.add_argument(
        "--queue-size", type=int, default=Settings.queue_size, help="the studio's queue limit"
    )
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 clients × 2 requests")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests = 4, 2

    from gradio_client import Client

    work = work_folder("load-bench-")
    studio = launch(work, queue_size=args.queue_size)
    try:
        print(f"{args.clients} clients × {args.requests} requests, queue size {args.queue_size}, "
              f"{args.steps} steps, tiny model on CPU")  # fmt: skip
        alone = Client(studio.url, verbose=False, download_files=str(work / "downloads" / "alone"))
        txt2img(alone, "warm-up", 1, args.steps)
        references, alone_seconds = {}, []
        for client in range(args.clients):
            for request in range(args.requests):
                began = time.perf_counter()
                images, _ = txt2img(alone, prompt_of(client), seed_of(client, request), args.steps)
                alone_seconds.append(time.perf_counter() - began)
                references[client, request] = pixels(images[0]["image"])
        print(f"alone, one request at a time: median {statistics.median(alone_seconds) * 1000:.0f} ms")

        outcomes: list[Outcome] = []
        start = threading.Barrier(args.clients + 1)

        def visitor(number: int) -> None:
            downloads = work / "downloads" / str(number)
            client = Client(studio.url, verbose=False, download_files=str(downloads))
            start.wait()
            for request in range(args.requests):
                prompt, seed = prompt_of(number), seed_of(number, request)
                began = time.perf_counter()
                try:
                    answer = txt2img(client, prompt, seed, args.steps)
                except Exception as error:  # noqa: BLE001 - every failure is sorted and counted
                    seconds = time.perf_counter() - began
                    kind = "refused" if BUSY in str(error).lower() else "failed"
                    outcomes.append(
                        Outcome(number, request, seconds, kind, f"{type(error).__name__}: {error}")
                    )
                    continue
                seconds = time.perf_counter() - began
                wrong = mismatch(answer, prompt, seed, references[number, request])
                outcomes.append(Outcome(number, request, seconds, "mismatch" if wrong else "ok", wrong))

        threads = [threading.Thread(target=visitor, args=(number,)) for number in range(args.clients)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
    finally:
        studio.close()
        shutil.rmtree(work, ignore_errors=True)

    return report(outcomes, wall, args.clients * args.requests)


def report(outcomes: list[Outcome], wall: float, sent: int) -> int:
    by_kind = {
        kind: [o for o in outcomes if o.kind == kind] for kind in ("ok", "refused", "failed", "mismatch")
    }
    ok = sorted(o.seconds for o in by_kind["ok"])
    print(f"sent {sent}: ok {len(ok)}, refused as busy {len(by_kind['refused'])}, "
          f"other failures {len(by_kind['failed'])}, mismatches {len(by_kind['mismatch'])}")  # fmt: skip
    if len(outcomes) != sent:
        print(f"MISSING: {sent - len(outcomes)} requests have no outcome")
    if ok:
        p95 = ok[min(len(ok) - 1, round(0.95 * (len(ok) - 1)))]
        print(
            f"latency of the ok ones: p50 {statistics.median(ok):.2f} s, p95 {p95:.2f} s, max {ok[-1]:.2f} s"
        )
    print(f"wall {wall:.1f} s, throughput {len(ok) / wall:.2f} images/s")
    if by_kind["refused"]:
        refused = by_kind["refused"]
        print(f"refusals answered in median {statistics.median(o.seconds for o in refused) * 1000:.0f} ms; "
              f"message: {refused[0].detail}")  # fmt: skip
    for outcome in by_kind["failed"] + by_kind["mismatch"]:
        print(f"{outcome.kind.upper()} client {outcome.client} request {outcome.request}: {outcome.detail}")
    return 1 if by_kind["failed"] or by_kind["mismatch"] or len(outcomes) != sent else 0


if __name__ == "__main__":
    sys.exit(main())
