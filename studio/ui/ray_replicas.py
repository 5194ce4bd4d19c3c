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
from typing import Any

from pipelines.parts.common import GeneratedImage
from pipelines.registry import TASKS
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.presets import Presets
from studio.core.requests import Request
from studio.core.settings import Settings
from studio.core.style_codes import StyleCodes

log = logging.getLogger(__name__)

APPLICATION = "studio"  # the Serve application's name on the cluster
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

    def run(self, task: str, request: Request) -> list[Any]:
        """The task's results, each image recording this replica as its worker."""
        return [worked_by(result, self.name) for result in self.tasks[task].generate(request)]


def worked_by(result: Any, worker: str) -> Any:
    if not isinstance(result, GeneratedImage):
        return result
    extras = {**result.parameters.extras, "worker": worker}
    return dataclasses.replace(result, parameters=dataclasses.replace(result.parameters, extras=extras))


def deployment(replicas: int) -> Any:
    """The Serve deployment of `StudioTasks`, `replicas` of it, each taking one request at a time."""
    from ray import serve

    @serve.deployment(num_replicas=replicas, max_ongoing_requests=1, ray_actor_options={"num_cpus": 1})
    class StudioReplica:
        def __init__(self, settings: Settings, presets: Presets) -> None:
            context = serve.get_replica_context()
            self.tasks = StudioTasks(settings, presets, f"{context.deployment}#{context.replica_tag}")

        @serve.multiplexed(max_num_models_per_replica=MODELS_PER_REPLICA)
        async def routed(self, model: str) -> str:
            return model  # the cache loads the model on first use; this tells Serve the replica holds it

        async def run(self, task: str, request: Request) -> list[Any]:
            await self.routed(serve.get_multiplexed_model_id())
            return await asyncio.to_thread(self.tasks.run, task, request)

    return StudioReplica


def ray_runner(settings: Settings, presets: Presets):
    """Start (or join) the cluster, deploy the replicas, and return `run(task, request) -> [result, ...]`."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        if settings.ray == "local":
            ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(address=settings.ray, logging_level=logging.WARNING, log_to_driver=False)
    replica = deployment(settings.replicas)
    handle = serve.run(replica.bind(settings, presets), name=APPLICATION, route_prefix=None)
    log.info("%d Ray Serve replica(s) run the tasks", settings.replicas)

    def run(task: str, request: Request) -> list[Any]:
        model = str(getattr(request, "model", None) or presets.default_model)
        return handle.options(multiplexed_model_id=model).run.remote(task, request).result()

    return run


def shut_down() -> None:
    """Remove the deployment and leave the cluster (a local one stops)."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
