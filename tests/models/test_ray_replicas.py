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
    yield ray_replicas.ray_replicas(settings, presets), presets
    ray_replicas.shut_down()


def test_two_replicas_share_six_concurrent_requests_with_no_mix_ups(two_replicas, cache):
    replicas, presets = two_replicas
    requests = [
        parse_request(TextToImageRequest, {"prompt": f"a lighthouse, view {n}", "seed": 100 + n, "steps": 1})
        for n in range(6)
    ]
    with ThreadPoolExecutor(len(requests)) as pool:
        grids = list(pool.map(lambda request: list(replicas.generate("txt2img", request)), requests))
    for request, [made] in zip(requests, grids, strict=True):
        assert (made.parameters.user_prompt, made.parameters.seed) == (request.prompt, request.seed)
    workers = {made.parameters.extras["worker"] for [made] in grids}
    assert len(workers) == 2, f"both replicas took requests: {workers}"

    # A replica makes the very image this process would
    [here] = TextToImagePipeline(cache, presets)(requests[3])
    assert np.array_equal(np.asarray(here.image), np.asarray(grids[3][0].image))


def replica_actors() -> list:
    """The replicas' Ray actors (Serve names them after the deployment)."""
    import ray

    named = ray.util.list_named_actors(all_namespaces=True)
    return [ray.get_actor(a["name"], namespace=a["namespace"]) for a in named if "StudioReplica" in a["name"]]


def busy(actor) -> bool:
    import ray

    return ray.get(actor.get_num_ongoing_requests.remote()) > 0  # Serve's own count, kept for its router


def test_a_replica_killed_mid_run_has_its_request_made_again_and_nothing_is_mixed_up(two_replicas):
    import ray

    replicas, _ = two_replicas
    requests = [
        parse_request(TextToImageRequest, {"prompt": f"kept whole {n}", "steps": 150, "seed": 10 * n})
        for n in (1, 2)
    ]
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(lambda r: list(replicas.generate("txt2img", r)), request) for request in requests
        ]
        actors = replica_actors()
        wait_until(lambda: all(busy(actor) for actor in actors), timeout=60)  # both mid-run
        ray.kill(actors[0])
        grids = [future.result(timeout=240) for future in futures]
    for request, grid in zip(requests, grids, strict=True):
        assert [made.parameters.seed for made in grid] == [request.seed]
        assert {made.parameters.user_prompt for made in grid} == {request.prompt}


def test_stop_cancels_the_remote_run_and_the_replicas_serve_on(two_replicas):
    replicas, _ = two_replicas
    long = parse_request(
        TextToImageRequest, {"prompt": "a long one", "steps": 150, "num_images": 4, "seed": 1}
    )
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(lambda: list(replicas.generate("txt2img", long, is_cancelled=stop.is_set)))
        wait_until(lambda: any(busy(actor) for actor in replica_actors()), timeout=60)
        stop.set()
        with pytest.raises(RunCancelled):
            running.result(timeout=60)
    wait_until(lambda: not any(busy(actor) for actor in replica_actors()), timeout=60)  # the task stopped too
    short = parse_request(TextToImageRequest, {"prompt": "after the stop", "steps": 1, "seed": 3})
    steps = []
    made = list(replicas.generate("txt2img", short, progress=lambda done, total: steps.append((done, total))))
    assert [image.parameters.seed for image in made] == [3]
    assert steps[-1] == (1, 1), "the replica's steps reach the progress bar"


def test_the_page_runs_its_jobs_on_the_replicas_and_saves_what_they_make(
    two_replicas, tiny_sd, tiny_presets_dir, tmp_path
):
    from gradio_client import Client

    from studio.core.metadata import read_parameters
    from tests.conftest import launch_app, studio_settings

    settings = studio_settings(
        tiny_sd, tmp_path / "outputs", presets_dir=tiny_presets_dir, ray="local", replicas=2
    )
    running = launch_app(settings)  # joins the cluster the fixture started, and deploys its own replicas
    try:
        client = Client(running.url, verbose=False)
        images, params = client.predict(
            prompt="a lighthouse", seed=4, steps=2, num_images=2, api_name="/txt2img"
        )
        assert [p["seed"] for p in params] == [4, 5]
        assert all(p["extras"]["worker"].startswith("StudioReplica#") for p in params)
        saved = read_parameters(next((tmp_path / "outputs").rglob("*-txt2img-4.png")))
        assert saved.extras["worker"] == params[0]["extras"]["worker"], "the history's PNG names its worker"
        assert "Ray Serve replicas" in running.demo.studio.model_check.message, (
            "the header says where models run"
        )
    finally:
        running.demo.close()
