"""The job runner behind every tab: validate a request, run its task, stream its results, obey Stop.

It knows nothing of what a task returns (images, text, structured data): it hands each result over as it
arrives, and the tab decides how to show it (the image grid saves and shows images; another tab may show
text). Every failure becomes a message in the UI and the API's error text; the app keeps serving.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import gradio as gr
from PIL import Image

from pipelines.parts.previews import PreviewImage, no_preview
from pipelines.task import Task
from studio.core.access import ModelAccess, RateLimit
from studio.core.downloads import downloads_reported_to, preparation_reported_to
from studio.core.errors import InvalidRequest, RunCancelled
from studio.core.fair_queue import Waiting, runs_of, serving_order
from studio.core.requests import Request, parse_request
from studio.ui.common import INSTANT_EVENT, gradio_progress, person_of, session_of, user_errors, visitor_of
from studio.ui.i18n import say, say_phrases

logger = logging.getLogger(__name__)


# Runs jobs in Ray Serve replicas (studio/ui/ray_replicas.py): a task's generate, remote.
class Replicas(Protocol):
    def generate(
        self, task: str, request: Request, progress: Any, is_cancelled: Callable[[], bool], preview: Any
    ) -> Iterator[Any]: ...


# Runs a whole job in another process (ZeroGPU): results arrive together, without step progress or Stop.
GpuRunner = Callable[[str, Request], list[Any]]


@dataclass(frozen=True)
class Job:
    """What a run was asked for, kept in a tab's state so Reroll can run it again with a new seed."""

    task: str
    values: dict[str, Any]
    action: str = ""  # what Reroll says it runs again, when not the tab's own action: "Vary Subtle"
    prompts: tuple[str, ...] = ()  # a batch: the job once per prompt, in order

    def rerolled(self) -> Job:
        return Job(self.task, {**self.values, "seed": -1}, self.action, self.prompts)

    def requests(self) -> list[dict[str, Any]]:
        """The request values of each run this job makes."""
        return [{**self.values, "prompt": prompt} for prompt in self.prompts] or [self.values]


@dataclass
class Run:
    """A session's running job: what was asked (by whom), its Stop flag, and how far it has got."""

    job: Job
    request: gr.Request | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    made: int = 0
    total: int = 1
    # What a stop must wake besides the flag: a worker waiting to be asked for its next result, which a
    # visitor who left will never ask for.
    wakers: list[Callable[[], None]] = field(default_factory=list)

    def end(self) -> None:
        """Stop at the next step, whether or not anyone still waits for the results."""
        self.stop.set()
        for wake in self.wakers:
            wake()

    def stopped_message(self) -> str:
        if self.total == 1:
            return say(
                "Stopped: the image was finished." if self.made else "Stopped before the image was finished."
            )
        return say(f"Stopped after {self.made} of {self.total} images.")


class Runs:
    """The running and queued jobs of each browser session; Stop sets their flags, polled between denoising
    steps and while a job waits for its turn. A session whose visitor left (closed the page) has its runs
    stopped and no more runs started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, list[Run]] = {}
        self._left: set[str] = set()

    def left(self, session: str) -> Run | None:
        """The visitor of `session` closed the page: its runs stop at the next step (the queued ones never
        start), and nobody else waits behind them."""
        with self._lock:
            self._left.add(session)
        return self.stop(session)

    def has_left(self, session: str) -> bool:
        with self._lock:
            return session in self._left

    def begin(self, session: str, run: Run) -> Run:
        with self._lock:
            self._runs.setdefault(session, []).append(run)
        return run

    def end(self, session: str, run: Run) -> None:
        with self._lock:
            others = [other for other in self._runs.get(session, []) if other is not run]
            if others:
                self._runs[session] = others
            else:
                self._runs.pop(session, None)

    def stop(self, session: str) -> Run | None:
        """Every run of `session` stops (a page may have queued several); the first, the one its progress
        shows, is returned."""
        with self._lock:
            runs = list(self._runs.get(session, []))
        for run in runs:
            run.end()
        return runs[0] if runs else None


class Turns:
    """Whose jobs run on the models next, `capacity` at a time (one; with --ray, one a replica), whether they
    came through the page's queue or from an HTTP client (client_apis): round-robin over people, each
    person's own in the order they came (studio/core/fair_queue.py), at most `per_person` of one person's
    runs waiting or running (0: no cap) and at most `most_waiting` waiting in all (0: no bound)."""

    def __init__(self, capacity: int = 1, per_person: int = 0, most_waiting: int = 0) -> None:
        self.capacity = capacity
        self.per_person = per_person
        self.most_waiting = most_waiting
        self._changed = threading.Condition()
        self._next_ticket = 0
        self._waiting: list[Waiting] = []
        self._serving: dict[int, str] = {}  # ticket: person
        self._last_served: dict[str, int] = {}  # person: when their last run started (a count of starts)
        self._starts = 0

    @contextmanager
    def taken(
        self, waiting: Callable[[int], None], stopped: Callable[[], bool], person: str = ""
    ) -> Iterator[bool]:
        """Inside the block, True while this job holds a turn; False when it was `stopped` while it waited
        (a `wake` makes it look). `waiting(ahead)` is told how many runs are before it (running or ahead in
        line), each time that changes. A person already at `per_person` runs is refused."""
        with self._changed:
            held = runs_of(person, self._waiting, self._serving)
            if self.per_person and held >= self.per_person:
                raise InvalidRequest(
                    f"You have {held} runs waiting or running, the most this studio queues for one person: "
                    "wait for one of them to finish."
                )
            if self.most_waiting and (queued := len(self._waiting)) >= self.most_waiting:
                raise InvalidRequest(
                    f"The studio is busy: {queued} runs are waiting already. Try again in a while."
                )
            mine = Waiting(self._next_ticket, person)
            self._next_ticket += 1
            self._waiting.append(mine)
            told = 0
            while True:
                if stopped():
                    self._waiting.remove(mine)
                    ours = False
                    break
                place = serving_order(self._waiting, self._last_served).index(mine.ticket)
                if place < self.capacity - len(self._serving):
                    self._waiting.remove(mine)
                    self._serving[mine.ticket] = person
                    self._starts += 1
                    self._last_served[person] = self._starts
                    ours = True
                    break
                ahead = place + len(self._serving)
                if ahead != told:
                    waiting(ahead)
                    told = ahead
                self._changed.wait()
            self._changed.notify_all()  # the line moved: the others' places changed
        try:
            yield ours
        finally:
            if ours:
                with self._changed:
                    del self._serving[mine.ticket]
                    self._changed.notify_all()

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


class JobRunner:
    def __init__(
        self,
        *,
        max_image_side: int | None = None,
        max_images: int | None = None,
        gpu_runner: GpuRunner | None = None,
        access: ModelAccess | None = None,
        rate_limit: RateLimit | None = None,
        turns: Turns | None = None,
    ) -> None:
        self.tasks: dict[str, Task] = {}
        self.runs = Runs()
        self.turns = turns or Turns()
        self.max_image_side = max_image_side
        self.max_images = max_images
        self.gpu_runner = gpu_runner
        self.replicas: Replicas | None = None  # with --ray: the Ray Serve replicas every job runs on
        self.access = access or ModelAccess()
        self.rate_limit = rate_limit or RateLimit()
        # Told of each run a closed page left unfinished (the history notes it).
        self.unfinished: Callable[[Run], None] = lambda run: None
        # The request with the asker's taste profile looked up (`--p`, or the one they turned on).
        self.personalised: Callable[[Task, Request, gr.Request | None], Request] = lambda task, r, asker: r

    def visitor_left(self, session: str) -> None:
        """The page of `session` closed: its run stops at once (a result it finishes after this is not
        handed over, so not saved) and its queued runs never start, so nobody waits behind them; what it
        left unmade is told to `unfinished`."""
        run = self.runs.left(session)
        if run is not None and run.made < run.total:
            logger.info("A %s run stopped: its visitor left. %s", run.job.task, run.stopped_message())
            self.unfinished(run)

    def add(self, name: str, pipeline: Task) -> None:
        self.tasks[name] = pipeline

    def check_limits(self, request: Request) -> None:
        """This server's own limits on the models named, image sides and counts, which may be tighter
        than what the pipelines accept (the page's sliders stop there too)."""
        self.access.check(request.references())
        count = getattr(request, "num_images", 1)
        if self.max_images and count > self.max_images:
            raise InvalidRequest(
                f"Images (num_images) must be at most {self.max_images} on this studio (got {count})."
            )
        for name, value in request:
            images = value if isinstance(value, tuple) else (value,)  # style references come several
            for image in images:
                if (
                    isinstance(image, Image.Image)
                    and self.max_image_side
                    and max(image.size) > self.max_image_side
                ):
                    raise InvalidRequest(
                        f"The {name.replace('_', ' ')} is {image.width}×{image.height}; this studio accepts "
                        f"up to {self.max_image_side} pixels on the longer side."
                    )

    def run(
        self,
        job: Job,
        request: gr.Request | None,
        progress: gr.Progress,
        *,
        notes: list[str] | None = None,
    ) -> Iterator[Any]:
        """Each result of `job` as soon as it is made (a batch: every prompt's, in order; "Prompt 3 of 7"
        on the progress bar). Stop ends the run, the whole batch, with a warning saying how far it got; a
        refused request (any line of a batch, before anything runs) or a failure raises `gr.Error`.

        What the prompt asked that is not honoured goes into `notes` for the tab to show beside its result:
        a queued run starts when the visitor may be on another tab, where a toast would not say whose it
        is. Without `notes`, each is a toast."""
        pipeline = self.tasks[job.task]
        with user_errors():
            readings = [pipeline.read_prompt_parameters(values) for values in job.requests()]
            for note in dict.fromkeys(note for _, noted in readings for note in noted):
                if notes is None:
                    gr.Warning(say_phrases([note]))
                else:
                    notes.append(note)
            requests = [
                self.personalised(pipeline, parse_request(pipeline.request_type, values), request)
                for values, _ in readings
            ]
            for parsed in requests:
                self.check_limits(parsed)
            self.rate_limit.check(visitor_of(request))
            session = session_of(request)
            total = sum(getattr(parsed, "num_images", 1) for parsed in requests)
            run = Run(job, request, total=total)
            if self.runs.has_left(session):  # queued before its visitor closed the page: nobody to show it
                logger.info("A %s run was dropped: its visitor left before it started.", job.task)
                self.unfinished(run)
                return
            self.runs.begin(session, run)
            progress(0, desc=say("Preparing the model…"))
            try:
                for position, parsed in enumerate(requests, start=1):
                    where = say(f"Prompt {position} of {len(requests)}") + " · " if len(requests) > 1 else ""
                    if run.stop.is_set():
                        raise RunCancelled()
                    for result in self._results(job.task, pipeline, parsed, run, progress, where):
                        if self.runs.has_left(session):  # noted as unfinished already: nobody to show it
                            raise RunCancelled()
                        run.made += not isinstance(result, PreviewImage)
                        yield result
            except RunCancelled:
                if not self.runs.has_left(session):
                    gr.Warning(run.stopped_message())
            finally:
                self.runs.end(session, run)

    def _results(
        self, task: str, pipeline: Task, parsed: Request, run: Run, progress: gr.Progress, where: str
    ) -> Iterator[Any]:
        run.wakers.append(self.turns.wake)  # Stop reaches a job waiting for its turn

        def waiting(ahead: int) -> None:
            told = (
                "Waiting for the run before it to finish…"
                if ahead == 1
                else f"Waiting for the {ahead} runs before it…"
            )
            progress(0, desc=where + say(told))

        def made(preview: Callable[[PreviewImage], None]) -> Iterator[Any]:
            """The job's results, made where jobs run: here, in a Ray replica, or in ZeroGPU's process."""
            steps = gradio_progress(progress, pipeline.progress_label, where)
            shown = preview if pipeline.shows_previews else no_preview
            if self.gpu_runner is not None:
                progress(0, desc=where + say("Waiting for a GPU…"))
                return iter(self.gpu_runner(task, parsed))
            if self.replicas is not None:
                return self.replicas.generate(task, parsed, steps, run.stop.is_set, shown)
            return pipeline.generate(parsed, progress=steps, is_cancelled=run.stop.is_set, preview=shown)

        def results(preview: Callable[[PreviewImage], None]) -> Iterator[Any]:
            with self.turns.taken(waiting, run.stop.is_set, person_of(run.request)) as ours:
                if not ours or run.stop.is_set():
                    raise RunCancelled()
                yield from made(preview)

        return in_worker(results, run, progress)

    def stop_button(
        self,
        button: gr.Button,
        events: list,
        status: gr.components.Component,
        *,
        grid: tuple[gr.Gallery, gr.State] | None = None,
    ) -> None:
        """Stop ends this session's run at the next step and says on `status` how far it got. A result
        `grid` (its gallery, and the state of its saved images' parameters) keeps its finished images only:
        the preview of an image Stop left unfinished goes, as it was never a result."""

        def stopped(request: gr.Request) -> str | None:
            run = self.runs.stop(session_of(request))
            return None if run is None else run.stopped_message()

        def stop_run(request: gr.Request):
            return stopped(request) or gr.skip()

        if grid is None:
            button.click(stop_run, None, [status], cancels=events, **INSTANT_EVENT)
            return

        def stop_grid(shown: list | None, saved: list | None, request: gr.Request):
            message = stopped(request)
            if message is None:
                return gr.skip(), gr.skip()
            return message, (shown or [])[: len(saved or [])]

        button.click(stop_grid, list(grid), [status, grid[0]], cancels=events, **INSTANT_EVENT)


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.{2 if unit == 'GB' else 0}f} {unit}"
    return f"{count} B"


@contextmanager
def reported_on(progress: gr.Progress) -> Iterator[None]:
    """Model downloads (in bytes) and preparation steps ("Converting the UNet for OpenVINO…") started in
    this thread inside the block, on `progress`."""

    def show(done: int, total: int) -> None:
        progress(
            done / total if total else None,
            desc=say(f"Downloading the model: {_size(done)} of {_size(total)}"),
        )

    with (
        downloads_reported_to(show),
        preparation_reported_to(lambda text: progress(None, desc=say(text))),
    ):
        yield


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_FINISHED = object()


def in_worker(
    results: Callable[[Callable[[PreviewImage], None]], Iterator[Any]],
    run: Run,
    progress: gr.Progress,
) -> Iterator[Any]:
    """The task's results and, while each is being made, its previews, with the task run in a worker
    thread: a preview is made inside a denoising call, which holds its thread until the image is finished.

    The worker makes the next result only when this generator is asked for it, as if it ran here; of the
    previews waiting, only the latest is handed over. A model downloaded on first use shows as a progress
    bar in bytes. When this generator is closed (the page cancelled the event), or the run is ended while
    nobody asks for more (the visitor left), the task stops at its next step and lets its models go."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    wanted = threading.Semaphore(0)  # released once for each result asked for
    closed = threading.Event()

    def work() -> None:
        try:
            with reported_on(progress):
                stream = results(events.put)
                try:
                    while wanted.acquire() and not closed.is_set():
                        result = next(stream, _FINISHED)
                        events.put(result)
                        if result is _FINISHED:
                            return
                finally:
                    stream.close()  # its models' lease ends here, in the thread that took it
        except BaseException as error:  # handed to the consumer, which raises it in the request's thread
            events.put(_Failed(error))

    # The worker sees this request's context (Gradio's, the download listener's) as its own.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True)
    run.wakers.append(wanted.release)  # ended: the worker goes on to its next step, which stops it
    worker.start()
    wanted.release()
    ended = False  # the worker has said its last: finished, or failed
    try:
        while True:
            event = events.get()
            ended = event is _FINISHED or isinstance(event, _Failed)
            if event is _FINISHED:
                return
            if isinstance(event, _Failed):
                raise event.error
            if isinstance(event, PreviewImage):
                if events.empty():  # else a newer event is waiting: this preview is out of date
                    yield event
                continue
            yield event
            wanted.release()
    finally:
        if not ended:  # closed early: the task stops at its next step (Stop is the run's, so not after)
            closed.set()
            run.end()
