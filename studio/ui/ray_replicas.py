"""Scale-out on Ray Serve: the tasks run in Serve replicas, each with a model cache of its own, behind the
same page.

With `--ray ADDRESS` (`local` starts a cluster on this machine) and `--replicas N`, the job runner hands each
request to a Serve deployment instead of running it in this process, as on ZeroGPU: the task's name and its
typed request go over (plain data and PIL images), the finished results come back. Serve routes a request to
a replica that already holds its model (`serve.multiplexed`, by model), and each image records the replica
that made it (`Worker: …`). The page, the history and the access rules stay in this process. Ray is
imported only with `--ray` (the `ray` extra: `pip install -e ".[ray]"`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from pipelines.parts.common import GeneratedImage
from pipelines.registry import TASKS
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import RunCancelled, StudioError
from studio.core.presets import Presets
from studio.core.requests import Request
from studio.core.settings import Settings
from studio.core.style_codes import StyleCodes

log = logging.getLogger(__name__)

APPLICATION = "studio"  # the Serve application's name on the cluster
ATTEMPTS = 2  # a request whose replica stops mid-run is made again once, on another
STOP_POLL_S = 0.1  # how often a waiting request looks at its Stop flag
MODELS_PER_REPLICA = 2  # models a replica is routed requests for before Serve prefers another replica


class StudioTasks:
    """One replica: every task of the studio on a model cache of its own."""

    def __init__(self, settings: Settings, presets: Presets, name: str) -> None:
        cache = ModelCache.for_machine(
            resolve_device(settings.device, settings.dtype), offline=settings.offline,
            backend=settings.backend, openvino_folder=settings.openvino_cache,
            gpu_budget_gib=settings.gpu_budget_gib, ram_budget_gib=settings.ram_budget_gib,
            offload=settings.offload,
        )  # fmt: skip
        codes = StyleCodes(settings.styles_folder)
        self.tasks = {
            task: task_type(cache, presets, codes, settings.upscalers_dir, settings.loras_dir)
            for task, task_type in TASKS.items()
        }
        self.name = name

    def run(self, task: str, request: Request, is_cancelled: Callable[[], bool]) -> list[Any]:
        """The task's results, each image recording this replica as its worker."""
        results = self.tasks[task].generate(request, is_cancelled=is_cancelled)
        return [worked_by(result, self.name) for result in results]


def worked_by(result: Any, worker: str) -> Any:
    if not isinstance(result, GeneratedImage):
        return result
    extras = {**result.parameters.extras, "worker": worker}
    return dataclasses.replace(result, parameters=dataclasses.replace(result.parameters, extras=extras))


def replica_options(settings: Settings) -> dict[str, Any]:
    """The deployment's options: a fixed number of replicas, or autoscaling between --min-replicas and
    --max-replicas on the requests each replica has (one at a time: a second one waiting means scale up)."""
    options: dict[str, Any] = {"max_ongoing_requests": 1, "ray_actor_options": {"num_cpus": 1}}
    if settings.max_replicas is None:
        return {**options, "num_replicas": settings.replicas}
    fewest = settings.min_replicas if settings.min_replicas is not None else 1
    if not 0 <= fewest <= settings.max_replicas:
        raise StudioError(
            f"--min-replicas ({fewest}) must be between 0 and --max-replicas ({settings.max_replicas})."
        )
    autoscaling = {
        "min_replicas": fewest,
        "max_replicas": settings.max_replicas,
        "target_ongoing_requests": 1,
    }
    return {**options, "autoscaling_config": autoscaling}


def deployment(settings: Settings) -> Any:
    """The Serve deployment of `StudioTasks`, each replica taking one request at a time."""
    from ray import serve

    @serve.deployment(**replica_options(settings))
    class StudioReplica:
        def __init__(self, settings: Settings, presets: Presets) -> None:
            context = serve.get_replica_context()
            self.tasks = StudioTasks(settings, presets, f"{context.deployment}#{context.replica_tag}")

        @serve.multiplexed(max_num_models_per_replica=MODELS_PER_REPLICA)
        async def routed(self, model: str) -> str:
            return model  # the cache loads the model on first use; this tells Serve the replica holds it

        async def run(self, task: str, request: Request) -> list[Any]:
            await self.routed(serve.get_multiplexed_model_id())
            stop = threading.Event()
            try:
                return await asyncio.to_thread(self.tasks.run, task, request, stop.is_set)
            except asyncio.CancelledError:  # the caller cancelled (Stop): the task ends at its next step
                stop.set()
                raise

    return StudioReplica


def ray_runner(settings: Settings, presets: Presets):
    """Start (or join) the cluster, deploy the replicas, and return `run(task, request, is_cancelled) ->
    [result, ...]`: a request whose replica stops mid-run is made again once, on another; Stop cancels."""
    import ray
    from ray import serve
    from ray.exceptions import ActorUnavailableError, RayActorError

    replica_lost = (RayActorError, ActorUnavailableError)

    if not ray.is_initialized():
        if settings.ray == "local":
            ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(address=settings.ray, logging_level=logging.WARNING, log_to_driver=False)
    replica = deployment(settings)
    handle = serve.run(replica.bind(settings, presets), name=APPLICATION, route_prefix=None)
    log.info("up to %d Ray Serve replica(s) run the tasks", settings.most_replicas)

    def run(task: str, request: Request, is_cancelled: Callable[[], bool]) -> list[Any]:
        model = str(getattr(request, "model", None) or presets.default_model)
        routed = handle.options(multiplexed_model_id=model)
        for attempt in range(ATTEMPTS):
            try:
                return answer(routed.run.remote(task, request), is_cancelled)
            except replica_lost as lost:
                if attempt == ATTEMPTS - 1:
                    raise StudioError(
                        "The worker making this request stopped, and so did the one it was retried on: "
                        "nothing was made. Try again."
                    ) from lost
                log.warning("a replica stopped while making a %s request (%s); retried", task, lost)
        raise AssertionError("unreachable")

    return run


def answer(response: Any, is_cancelled: Callable[[], bool]) -> list[Any]:
    """The remote call's results; Stop cancels the call (its task ends at its next step): `RunCancelled`."""
    while True:
        if is_cancelled():
            response.cancel()
            raise RunCancelled()
        try:
            return response.result(timeout_s=STOP_POLL_S)
        except TimeoutError:
            continue


def shut_down() -> None:
    """Remove the deployment and leave the cluster (a local one stops)."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
