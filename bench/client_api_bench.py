"""The same text-to-image request through AUTOMATIC1111's `/sdapi/v1/txt2img` and through the page's Gradio
API (`gradio_client`, `/txt2img`), on one studio serving the tests' tiny model on the CPU: each client
gets the PNG back. Rounds interleave the two (A1111 first in odd rounds, Gradio first in even ones);
medians and the ratio of per-round times are printed, and that both made the same pixels.

    python bench/client_api_bench.py --rounds 15 --steps 4
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import time

import numpy as np
import requests
import tiny_studio
from gradio_client import Client
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=4)
    options = parser.parse_args()

    work = tiny_studio.work_folder("client-api-bench-")
    studio = tiny_studio.launch(work)
    page = Client(studio.url, verbose=False)
    prompt = "a lighthouse on a cliff at dawn"

    def through_a1111(seed: int) -> Image.Image:
        body = {"prompt": prompt, "seed": seed, "steps": options.steps, "cfg_scale": 5,
                "sampler_name": "Euler", "width": 512, "height": 512}  # fmt: skip
        answer = requests.post(studio.url + "sdapi/v1/txt2img", json=body, timeout=300)
        answer.raise_for_status()
        return Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))

    def through_gradio(seed: int) -> Image.Image:
        images, _ = page.predict(
            prompt=prompt, seed=seed, steps=options.steps, guidance_scale=5, sampler="Euler",
            aspect_ratio="1:1", num_images=1, api_name="/txt2img",
        )  # fmt: skip
        return Image.open(images[0]["image"])

    def timed(call, seed: int) -> tuple[float, Image.Image]:
        start = time.perf_counter()
        image = call(seed)
        return time.perf_counter() - start, image

    try:
        through_a1111(0), through_gradio(0)  # warm: the model loaded, both paths run once
        a1111_times, gradio_times, same = [], [], True
        for round_number in range(options.rounds):
            order = [through_a1111, through_gradio][:: 1 if round_number % 2 == 0 else -1]
            results = {call.__name__: timed(call, 100 + round_number) for call in order}
            a1111_times.append(results["through_a1111"][0])
            gradio_times.append(results["through_gradio"][0])
            pixels = [
                np.asarray(results[name][1].convert("RGB")) for name in ("through_a1111", "through_gradio")
            ]
            same &= np.array_equal(*pixels)
        ratios = [a / g for a, g in zip(a1111_times, gradio_times, strict=True)]
        print(f"rounds: {options.rounds}, steps: {options.steps}, tiny SD model on the CPU (torch)")
        print(f"/sdapi/v1/txt2img: median {statistics.median(a1111_times) * 1000:.0f} ms")
        print(f"gradio /txt2img:   median {statistics.median(gradio_times) * 1000:.0f} ms")
        print(f"ratio (A1111 / Gradio), median of per-round ratios: {statistics.median(ratios):.3f}")
        print(f"same pixels for the same seed in every round: {same}")
    finally:
        studio.close()


if __name__ == "__main__":
    main()
