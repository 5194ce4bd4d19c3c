"""Ray Serve replicas (`--ray local --replicas 2`): requests run in replicas with their own model caches,
each image names the replica that made it, and concurrent requests never get each other's images."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.errors import RunCancelled
from studio.core.requests import parse_request
from studio.core.settings import Settings
from studio.ui import ray_replicas
from tests.conditions import wait_until
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
        grids = list(pool.map(lambda request: run("txt2img", request, bool), requests))
    for request, [made] in zip(requests, grids, strict=True):
        assert (made.parameters.user_prompt, made.parameters.seed) == (request.prompt, request.seed)
    workers = {made.parameters.extras["worker"] for [made] in grids}
    assert len(workers) == 2, f"both replicas took requests: {workers}"

    # A replica makes the very image this process would
    [here] = TextToImagePipeline(cache, presets)(requests[3])
    assert np.array_equal(np.asarray(here.image), np.asarray(grids[3][0].image))


def replicas() -> list:
    """The replicas' Ray actors (Serve names them after the deployment)."""
    import ray

    named = ray.util.list_named_actors(all_namespaces=True)
    return [ray.get_actor(a["name"], namespace=a["namespace"]) for a in named if "StudioReplica" in a["name"]]


def busy(actor) -> bool:
    import ray

    return ray.get(actor.get_num_ongoing_requests.remote()) > 0  # Serve's own count, kept for its router


def test_a_replica_killed_mid_run_has_its_request_made_again_and_nothing_is_mixed_up(two_replicas):
    import ray

    run, _ = two_replicas
    requests = [
        parse_request(
            TextToImageRequest, {"prompt": f"kept whole {n}", "steps": 60, "num_images": 2, "seed": 10 * n}
        )
        for n in (1, 2)
    ]
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(run, "txt2img", request, bool) for request in requests]
        actors = replicas()
        wait_until(lambda: all(busy(actor) for actor in actors), timeout=60)  # both mid-run
        ray.kill(actors[0])
        grids = [future.result(timeout=240) for future in futures]
    for request, grid in zip(requests, grids, strict=True):
        assert [made.parameters.seed for made in grid] == [request.seed, request.seed + 1]
        assert {made.parameters.user_prompt for made in grid} == {request.prompt}


def test_stop_cancels_the_remote_run_and_the_replicas_serve_on(two_replicas):
    run, _ = two_replicas
    long = parse_request(
        TextToImageRequest, {"prompt": "a long one", "steps": 150, "num_images": 4, "seed": 1}
    )
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run, "txt2img", long, stop.is_set)
        wait_until(lambda: any(busy(actor) for actor in replicas()), timeout=60)
        stop.set()
        with pytest.raises(RunCancelled):
            running.result(timeout=60)
    wait_until(lambda: not any(busy(actor) for actor in replicas()), timeout=60)  # the task stopped too
    short = parse_request(TextToImageRequest, {"prompt": "after the stop", "steps": 1, "seed": 3})
    assert [made.parameters.seed for made in run("txt2img", short, bool)] == [3]
