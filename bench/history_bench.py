"""The history with many results: saving, the History tab's first page, a prompt search, an index rebuild.

    python bench/history_bench.py                 # 20,000 results (a few minutes on 2 cores)
    python bench/history_bench.py --results 2000  # quicker

Results are small PNGs with real parameters, saved through the studio's own History; then the studio is
launched on that outputs folder and /history is called over HTTP, as the tab and the API do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from studio.core.history import History  # noqa: E402
from studio.core.history_index import Query, Viewer  # noqa: E402
from studio.core.metadata import GenerationParameters  # noqa: E402

SUBJECTS = ["lighthouse", "fox", "harbour", "castle", "owl", "kettle", "heron", "bridge", "forest", "robot"]


def result(index: int) -> tuple[Image.Image, GenerationParameters]:
    subject = SUBJECTS[index % len(SUBJECTS)]
    prompt = f"a {subject} number {index}, {('oil painting', 'photo', 'ink')[index % 3]}"
    parameters = GenerationParameters(
        task=("txt2img", "img2img", "upscale")[index % 3], prompt=prompt, negative_prompt="blurry", steps=20,
        sampler="Euler a", guidance_scale=7, seed=index, width=64, height=64,
        model=("sd-turbo", "sd-1.5", "sdxl")[index % 3], user_prompt=prompt,
    )  # fmt: skip
    return Image.new("RGB", (64, 64), ((index * 7) % 256, (index * 13) % 256, (index * 29) % 256)), parameters


def timed(work, repeats: int = 5) -> float:
    """The median of `repeats` runs, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=20_000)
    parser.add_argument("--keep", help="keep the outputs folder here instead of a temporary one")
    args = parser.parse_args()
    outputs = Path(args.keep or tempfile.mkdtemp(prefix="history-bench-"))
    history = History(outputs)

    first_saves = []
    started = time.perf_counter()
    for index in range(args.results):
        image, parameters = result(index)
        began = time.perf_counter()
        history.save(image, parameters)
        if index < 20:
            first_saves.append(time.perf_counter() - began)
    print(f"saved {args.results} results in {time.perf_counter() - started:.1f} s")
    last_saves = []
    for index in range(args.results, args.results + 20):
        image, parameters = result(index)
        began = time.perf_counter()
        history.save(image, parameters)
        last_saves.append(time.perf_counter() - began)
    print(f"saving result 1-20: median {statistics.median(first_saves) * 1000:.1f} ms")
    last = statistics.median(last_saves) * 1000
    print(f"saving result {args.results + 1}-{args.results + 20}: median {last:.1f} ms")

    index = history.index
    everyone = Viewer()
    print(f"index, first page: {timed(lambda: index.search(Query(), everyone)) * 1000:.1f} ms")
    print(f"index, prompt search 'lighthouse oil': "
          f"{timed(lambda: index.search(Query(text='lighthouse oil'), everyone)) * 1000:.1f} ms")  # fmt: skip
    print(f"index, filter choices: {timed(lambda: index.choices(everyone)) * 1000:.1f} ms")
    print(f"index, sync with nothing changed: {timed(index.sync, repeats=3) * 1000:.0f} ms")

    (outputs / ".history.sqlite").unlink()
    for end in ("-wal", "-shm"):
        (outputs / f".history.sqlite{end}").unlink(missing_ok=True)
    rebuilt = History(outputs)
    began = time.perf_counter()
    counts = rebuilt.index.sync()
    print(f"rebuild of a missing index: {time.perf_counter() - began:.1f} s ({counts['added']} results read)")

    first_page, search = over_http(outputs)
    print(f"/history over HTTP, first page: median {first_page * 1000:.0f} ms")
    print(f"/history over HTTP, prompt search: median {search * 1000:.0f} ms")
    if not args.keep:
        shutil.rmtree(outputs)
    return 0


def over_http(outputs: Path) -> tuple[float, float]:
    """The studio launched on `outputs`, and /history called as the History tab's first page does."""
    from gradio_client import Client

    import app
    from studio.core.settings import Settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(device="cpu", port=port, outputs=outputs, offline=True)
    demo = app.create_app(settings)
    demo.launch(**{**app.launch_options(demo), "prevent_thread_lock": True, "quiet": True})
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        client.predict(api_name="/history")  # the once-per-start sync
        first = timed(lambda: client.predict(api_name="/history"))
        search = timed(lambda: client.predict(text="heron ink", api_name="/history"))
    finally:
        demo.close()
    return first, search


if __name__ == "__main__":
    sys.exit(main())
