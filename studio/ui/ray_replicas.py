"""Scale-out on Ray Serve: the tasks run in Serve replicas, each with a model cache of its own, behind the
same page.

With `--ray ADDRESS` (`local` starts a cluster on this machine) and `--replicas N` (or autoscaling), the job
runner hands each request to a Serve deployment instead of running it in this process: the task's name and
its typed request go over (plain data and PIL images), and the run's steps, previews and results stream back
as the replica makes them (a streaming call), so the page shows progress as it does for a local run. Serve
routes a request to a replica that already holds its model (`serve.multiplexed`, by model), and each image
records the replica that made it (`Worker: …`). The page, the history and the access rules stay in this
process. Ray is imported only with `--ray` (the `ray` extra: `pip install -e ".[ray]"`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pipelines.parts.common import GeneratedImage, IsCancelled, Progress, never_cancelled, no_progress
from pipelines.parts.previews import PreviewImage, PreviewSink, no_preview
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
STEP_EVENT_S = 0.25  # the progress bar moves at least this often from a remote run
MODELS_PER_REPLICA = 2  # models a replica is routed requests for before Serve prefers another replica


class StudioTasks:
    """One replica: every task of the studio on a model cache of its own."""

    def __init__(self, settings: Settings, presets: Presets, name: str) -> None:
        cache = ModelCache.for_machine(
            resolve_device(settings.device, settings.dtype, settings.quantize), offline=settings.offline,
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

    def generate(
        self, task: str, request: Request, progress: Progress, is_cancelled: IsCancelled, preview: PreviewSink
    ) -> Iterator[Any]:
        """The task's results as they are made, each image recording this replica as its worker."""
        pipeline = self.tasks[task]
        shown = preview if pipeline.shows_previews else no_preview
        for result in pipeline.generate(request, progress, is_cancelled, shown):
            yield worked_by(result, self.name)


@dataclass(frozen=True)
class Stepped:
    """A denoising step of a remote run, for the page's progress bar."""

    done: int
    total: int


class StepEvents:
    """A run's steps as `Stepped` events, at most one each `STEP_EVENT_S` (and the last): each event crosses
    to the front process, and a fast model's every step would cost more there than the step itself."""

    def __init__(self, send: Callable[[Stepped], None]) -> None:
        self.send = send
        self.last = -STEP_EVENT_S

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= STEP_EVENT_S or done == total:
            self.last = now
            self.send(Stepped(done, total))


@dataclass(frozen=True)
class Failed:
    error: BaseException


FINISHED = "finished"


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

        async def generate(self, task: str, request: Request, previews: bool) -> AsyncIterator[Any]:
            """The run's steps, previews and results as they come (a streaming call); the caller's cancel
            (Stop) ends the task at its next step."""
            await self.routed(serve.get_multiplexed_model_id())
            loop, events, stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()

            def put(event: Any) -> None:
                loop.call_soon_threadsafe(events.put_nowait, event)

            def work() -> None:
                try:
                    steps = StepEvents(put)
                    shown = put if previews else no_preview  # none made where nobody watches
                    for result in self.tasks.generate(task, request, steps, stop.is_set, shown):
                        put(result)
                    put(FINISHED)
                except BaseException as error:  # raised to the caller from the stream
                    put(Failed(error))

            working = asyncio.ensure_future(asyncio.to_thread(work))
            try:
                while (event := await events.get()) is not FINISHED:
                    if isinstance(event, Failed):
                        raise event.error
                    yield event
            finally:
                stop.set()
                await asyncio.shield(working)

    return StudioReplica


class RayReplicas:
    """The deployment as the job runner calls it: `generate` streams a request's steps (to `progress`),
    previews (to `preview`) and results from a replica. A request whose replica stops before any result
    came back is made again once, on another; Stop cancels the remote run."""

    def __init__(self, handle: Any, presets: Presets) -> None:
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        self.handle = handle
        self.presets = presets
        self.lost = (RayActorError, ActorUnavailableError)
        self.failed = RayTaskError

    def generate(
        self,
        task: str,
        request: Request,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
        preview: PreviewSink = no_preview,
    ) -> Iterator[Any]:
        model = str(getattr(request, "model", None) or self.presets.default_model)
        routed = self.handle.options(multiplexed_model_id=model, stream=True)
        for attempt in range(1, ATTEMPTS + 1):
            made, finished = 0, False
            stream = routed.generate.remote(task, request, preview is not no_preview)
            try:
                for event in stream:
                    if is_cancelled():
                        raise RunCancelled()
                    if isinstance(event, Stepped):
                        progress(event.done, event.total)
                    elif isinstance(event, PreviewImage):
                        preview(event)
                    else:
                        made += 1
                        yield event
                finished = True
                return
            except self.failed as error:  # the task's own refusal or failure, raised there: raised here
                raise error.cause from None
            except self.lost as lost:
                if made or attempt == ATTEMPTS:
                    raise StudioError(
                        f"The worker making this request stopped after {made} of its results: the rest were "
                        "not made. Try again."
                    ) from lost
                log.warning("a replica stopped while making a %s request (%s); retried", task, lost)
            finally:
                if not finished:  # stopped, closed by the page, or failed: the replica's task ends too
                    stream.cancel()


def ray_replicas(settings: Settings, presets: Presets) -> RayReplicas:
    """Start (or join) the cluster and deploy the replicas."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        if settings.ray == "local":
            ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(address=settings.ray, logging_level=logging.WARNING, log_to_driver=False)
    replica = deployment(settings)
    handle = serve.run(replica.bind(settings, presets), name=APPLICATION, route_prefix=None)
    log.info("up to %d Ray Serve replica(s) run the tasks", settings.most_replicas)
    return RayReplicas(handle, presets)


def shut_down() -> None:
    """Remove the deployment and leave the cluster (a local one stops)."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
