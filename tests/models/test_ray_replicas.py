"""Ray Serve replicas (`--ray local --replicas 2`): requests run in replicas with their own model caches,
each image names the replica that made it, and concurrent requests never get each other's images."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.requests import parse_request
from studio.core.settings import Settings
from studio.ui import ray_replicas
from tests.conftest import OPENVINO_FOLDER


@pytest.fixture(scope="module")
def two_replicas(tiny_sd, fast_decoder_presets, tmp_path_factory):
    settings = Settings(
        model=str(tiny_sd), device="cpu", offline=True, outputs=tmp_path_factory.mktemp("outputs"),
        openvino_cache=OPENVINO_FOLDER, ray="local", replicas=2,
    )  # fmt: skip
    presets = dataclasses.replace(fast_decoder_presets, default_model=str(tiny_sd))
    yield ray_replicas.ray_runner(settings, presets), presets
    ray_replicas.shut_down()


def test_two_replicas_share_six_concurrent_requests_with_no_mix_ups(two_replicas, cache):
    run, presets = two_replicas
    requests = [
        parse_request(TextToImageRequest, {"prompt": f"a lighthouse, view {n}", "seed": 100 + n, "steps": 1})
        for n in range(6)
    ]
    with ThreadPoolExecutor(len(requests)) as pool:
        grids = list(pool.map(lambda request: run("txt2img", request), requests))
    for request, [made] in zip(requests, grids, strict=True):
        assert (made.parameters.user_prompt, made.parameters.seed) == (request.prompt, request.seed)
    workers = {made.parameters.extras["worker"] for [made] in grids}
    assert len(workers) == 2, f"both replicas took requests: {workers}"

    # A replica makes the very image this process would
    [here] = TextToImagePipeline(cache, presets)(requests[3])
    assert np.array_equal(np.asarray(here.image), np.asarray(grids[3][0].image))
