"""Many runs in a row across every tab's API on one studio: memory, open files and Gradio's cache folder.

    python bench/soak_bench.py            # 300 runs, sampled every 10, warm-up 30
    python bench/soak_bench.py --quick    # 20 runs, sampled every 5, warm-up 5
    python bench/soak_bench.py --sweep 30 # Gradio's cache swept every 30 s of files older than 30 s

The studio is the real app serving the tests' tiny random model on CPU (bench/tiny_studio.py), called
with gradio_client in turn: text to image, image to image, instant style transfer, diffusion style
transfer (ControlNet + IP-Adapter) and Real-ESRGAN upscale. Each run brings its own input image and seed,
as visitors do. The studio runs in this process, so the RSS and open file descriptors read from /proc are
the server's (with one client's beside it). Gradio keeps every upload and every result it serves in its
cache folder (GRADIO_TEMP_DIR) unless `gr.Blocks(delete_cache=...)` is set: its growth is reported, and
whether the app sets it (app.CACHE_SWEEP: hourly, of files older than six hours; `--sweep` shortens it so
a soak of minutes shows the folder levelling off). Exit status 1 when a run fails.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from tiny_studio import folder_size, launch, work_folder

MIB = 1024 * 1024


def picture(folder: Path, index: int, size: tuple[int, int] = (64, 48)) -> str:
    """A gradient of its own for run `index`: every upload is a new file, as visitors' are."""
    from PIL import Image

    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    array = np.stack([x * 4 + index, y * 5 + 2 * index, (x + y) * 2 + 3 * index], axis=-1) % 256
    path = folder / f"input-{index}.png"
    Image.fromarray(array.astype(np.uint8)).save(path)
    return str(path)


def runs(inputs: Path):
    """(name, call(client, index)) for each tab's endpoint, taken in turn."""
    from gradio_client import handle_file

    def txt2img(client, index):
        return client.predict(prompt=f"a lighthouse, run {index}", seed=index, steps=2, api_name="/txt2img")

    def img2img(client, index):
        image = handle_file(picture(inputs, index))
        return client.predict(
            image=image, prompt="a mosaic", strength=0.6, seed=index, steps=2, api_name="/img2img"
        )

    def instant_style(client, index):
        image = handle_file(picture(inputs, index, (96, 72)))
        return client.predict(image=image, mode="instant", working_size=256, api_name="/style_transfer")

    def diffusion_style(client, index):
        image, style = handle_file(picture(inputs, index)), handle_file(picture(inputs, index + 100_000))
        return client.predict(
            image=image, mode="diffusion", style_image=style, structure="canny", prompt="oil painting",
            seed=index, steps=2, api_name="/style_transfer",
        )  # fmt: skip

    def upscale(client, index):
        image = handle_file(picture(inputs, index))
        return client.predict(
            image=image, upscaler="Real-ESRGAN AnimeVideo v3 x2", scale=2, api_name="/upscale"
        )

    return [
        ("txt2img", txt2img),
        ("img2img", img2img),
        ("style instant", instant_style),
        ("style diffusion", diffusion_style),
        ("upscale", upscale),
    ]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def sample(done: int, studio, downloads: Path) -> dict:
    gc.collect()
    cache_bytes, cache_files = folder_size(studio.cache_folder)
    output_bytes, output_files = folder_size(studio.outputs)
    row = {
        "runs": done, "rss": rss_mib(), "fds": len(os.listdir("/proc/self/fd")),
        "cache_mib": cache_bytes / MIB, "cache_files": cache_files,
        "outputs_mib": output_bytes / MIB, "outputs_files": output_files,
    }  # fmt: skip
    print(f"after {done:4d} runs: RSS {row['rss']:7.1f} MiB, {row['fds']:4d} fds, "
          f"Gradio cache {row['cache_mib']:6.2f} MiB in {cache_files:5d} files, "
          f"outputs {row['outputs_mib']:6.2f} MiB in {output_files:5d} files, "
          f"client downloads {folder_size(downloads)[1]} files", flush=True)  # fmt: skip
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--every", type=int, default=10, help="sample every this many runs")
    parser.add_argument("--warmup", type=int, default=30, help="runs before the memory baseline")
    parser.add_argument("--quick", action="store_true", help="20 runs, sampled every 5, warm-up 5")
    parser.add_argument("--sweep", type=int, help="sweep Gradio's cache every N s of files older than N s")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.every, args.warmup = 20, 5, 5

    from gradio_client import Client

    if args.sweep:
        import app

        app.CACHE_SWEEP = (args.sweep, args.sweep)
    work = work_folder("soak-bench-")
    (work / "inputs").mkdir()
    downloads = work / "downloads"  # the client's copies, outside Gradio's cache folder
    studio = launch(work)
    failures, seconds = [], {}
    try:
        delete_cache = getattr(studio.demo, "delete_cache", None)
        print(f"{args.runs} runs, tiny model on CPU; gr.Blocks delete_cache: {delete_cache or 'not set'}")
        client = Client(studio.url, verbose=False, download_files=str(downloads))
        kinds = runs(work / "inputs")
        samples = [sample(0, studio, downloads)]
        began = time.perf_counter()
        for index in range(args.runs):
            name, call = kinds[index % len(kinds)]
            started = time.perf_counter()
            try:
                call(client, index)
            except Exception as error:  # noqa: BLE001 - counted and reported, the soak goes on
                failures.append(f"run {index} ({name}): {type(error).__name__}: {error}")
            seconds.setdefault(name, []).append(time.perf_counter() - started)
            done = index + 1
            if done % args.every == 0 or done == args.warmup or done == args.runs:
                samples.append(sample(done, studio, downloads))
        wall = time.perf_counter() - began
    finally:
        studio.close()
        shutil.rmtree(work, ignore_errors=True)

    report(samples, args.warmup, wall, seconds, delete_cache)
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


def report(samples: list[dict], warmup: int, wall: float, seconds: dict, delete_cache) -> None:
    start, end = samples[0], samples[-1]
    warm = next(row for row in samples if row["runs"] >= warmup)
    runs_after = end["runs"] - warm["runs"]
    drift = end["rss"] - warm["rss"]
    per_100 = drift / runs_after * 100 if runs_after else 0.0
    medians = ", ".join(f"{name} {statistics.median(times) * 1000:.0f} ms" for name, times in seconds.items())
    print(f"{end['runs']} runs in {wall:.0f} s; median per run: {medians}")
    peak = max(row["rss"] for row in samples)
    print(f"RSS: start {start['rss']:.1f} MiB, after {warm['runs']} runs {warm['rss']:.1f} MiB, "
          f"end {end['rss']:.1f} MiB: drift {drift:+.1f} MiB over {runs_after} runs "
          f"({per_100:+.1f} MiB per 100 runs); highest sample {peak:.1f} MiB")  # fmt: skip
    print(f"open fds: start {start['fds']}, after {warm['runs']} runs {warm['fds']}, end {end['fds']}")
    files = end["cache_files"] - start["cache_files"]
    kib = (end["cache_mib"] - start["cache_mib"]) * 1024
    print(f"Gradio cache folder: start {start['cache_mib']:.2f} MiB / {start['cache_files']} files, "
          f"end {end['cache_mib']:.2f} MiB / {end['cache_files']} files "
          f"(+{files / end['runs']:.1f} files, +{kib / end['runs']:.0f} KiB per run)")  # fmt: skip
    print(f"outputs folder (the history, kept by design): {end['outputs_mib']:.2f} MiB, "
          f"{end['outputs_files']} files")  # fmt: skip
    if not delete_cache and files > 0:
        print("UNBOUNDED: gr.Blocks has no delete_cache; nothing removes Gradio's cached uploads and results")


if __name__ == "__main__":
    sys.exit(main())
