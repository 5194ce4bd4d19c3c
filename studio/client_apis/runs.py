"""Running a client's request on the studio: the job runner the page uses (its access rules, limits and
one-job-at-a-time turns), each image saved to the history as the caller's, and how far the run has got
for AUTOMATIC1111's `/progress`, `/interrupt` and `/skip`."""

from __future__ import annotations

import base64
import binascii
import io
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import gradio as gr
from fastapi import Request as HttpRequest
from PIL import Image

from pipelines.diffusion import DiffusionRequest, GeneratedImage
from pipelines.parts.common import image_seed, resolve_seed
from pipelines.parts.previews import PreviewImage
from studio.core.errors import ResultNotSaved, StudioError
from studio.core.metadata import GenerationParameters, png_info
from studio.core.settings import Settings
from studio.ui.common import visitor_of
from studio.ui.context import Studio
from studio.ui.runner import Job


class ClientError(Exception):
    """A request the studio refuses (or could not carry out), with the HTTP status to answer it with; each
    API writes it in its clients' own error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Made:
    """One image made for a client: as saved in the history (None: it could not be saved), and its PNG."""

    image: Image.Image
    parameters: GenerationParameters
    path: Path | None

    def png(self) -> bytes:
        if self.path is not None:
            return self.path.read_bytes()
        buffer = io.BytesIO()  # unsaved (the outputs folder is full): the same PNG, from memory
        self.image.save(buffer, format="PNG", pnginfo=png_info(self.parameters))
        return buffer.getvalue()

    def base64(self) -> str:
        return base64.b64encode(self.png()).decode("ascii")


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class ClientJob:
    """A client's request, run as one or more jobs in turn (AUTOMATIC1111's `n_iter`): who asked, and how
    far it has got."""

    task: str
    visitor: str
    images: int
    started: float = field(default_factory=time.monotonic)
    made: int = 0
    step: int = 0
    steps: int = 0
    preview: Image.Image | None = None
    session: str | None = None  # the job running now
    interrupted: bool = False
    skipped: bool = False

    @property
    def fraction(self) -> float:
        within = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.made + within) / max(self.images, 1))

    def report(self, value: Any = None, desc: str | None = None, total: Any = None, unit: str = "") -> None:
        """The runner's progress calls (as a `gr.Progress` takes them): `(step, steps)` while denoising."""
        if isinstance(value, tuple):
            self.step, self.steps = value


def decoded_image(data: Any, what: str) -> Image.Image:
    """A base64 image as clients send one (plain, or a `data:image/png;base64,` URL), decoded."""
    if not isinstance(data, str) or not data:
        raise ClientError(422, f"{what} must be a base64-encoded image.")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[-1], validate=False)))
        image.load()
    except (binascii.Error, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ClientError(422, f"{what} could not be read as an image ({error}).") from error
    return image


async def json_object(http: HttpRequest, *, refused: int) -> dict[str, Any]:
    """A request's JSON object of fields; anything else is refused with status `refused` (A1111 answers
    422, OpenAI 400)."""
    try:
        body = await http.json()
    except (ValueError, UnicodeDecodeError) as error:
        raise ClientError(refused, f"The body is not JSON ({error}).") from error
    if not isinstance(body, dict):
        raise ClientError(refused, "The body must be a JSON object of fields.")
    return body


def most_per_job(settings: Settings) -> int:
    """The most images one job makes: a request's own bound, or this studio's lower --max-images."""
    most = DiffusionRequest.bounds("num_images")[1]
    return min(most, settings.max_images) if settings.max_images else most


def batches(seed: int, count: int, per_job: int) -> list[tuple[int, int]]:
    """(seed, images) of each job that makes `count` images `per_job` at a time; image i of the whole
    request gets seed s+i whatever the split, as on the page (-1: one random s for all)."""
    base = resolve_seed(seed)
    return [(image_seed(base, start), min(per_job, count - start)) for start in range(0, count, per_job)]


class ClientRuns:
    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self._lock = threading.Lock()
        self._jobs: list[ClientJob] = []  # running or waiting for their turn, oldest first
        # Requests that wait for their turn at the models hold threads of their own, so however many wait,
        # the quick routes (/progress, /interrupt) still find one.
        self._waiting = anyio.CapacityLimiter(studio.settings.queue_size)

    async def in_thread(self, work: Callable[..., Any], *arguments: Any, runs_job: bool) -> Any:
        """`work(*arguments)` in a worker thread: a job's among the requests that wait for their turn."""
        return await anyio.to_thread.run_sync(work, *arguments, limiter=self._waiting if runs_job else None)

    @property
    def current(self) -> ClientJob | None:
        """The oldest client job not finished: the one running, or next to run."""
        with self._lock:
            return self._jobs[0] if self._jobs else None

    @property
    def unfinished(self) -> int:
        """Client jobs running or waiting for their turn."""
        with self._lock:
            return len(self._jobs)

    def run(self, job: ClientJob, runs: list[Job], http: HttpRequest, username: str | None) -> list[Any]:
        """The results of each of `runs` in turn, made as `username` (signed in with --auth) from `http`'s
        address: images saved as theirs (each a `Made`), anything else (a description) as it is. A
        refusal raises `ClientError`; `/interrupt` ends it with what was made."""
        made: list[Any] = []
        with self._lock:
            self._jobs.append(job)
        try:
            for one in runs:
                if job.interrupted:
                    break
                job.skipped, job.session = False, f"client-{uuid.uuid4().hex}"
                caller = gr.Request(http, username=username, session_hash=job.session)
                made += self._run_one(job, one, caller)
        finally:
            with self._lock:
                self._jobs.remove(job)
        return made

    def _run_one(self, job: ClientJob, one: Job, caller: gr.Request) -> list[Any]:
        owner = self.studio.viewer(caller).owner
        made: list[Any] = []
        results = self.studio.runner.run(one, caller, job.report, notes=[])
        try:
            for result in results:
                if isinstance(result, PreviewImage):
                    job.preview = result.image
                    continue
                made.append(self._saved(result, owner) if isinstance(result, GeneratedImage) else result)
                job.made, job.step = job.made + 1, 0
                if job.interrupted or job.skipped:  # asked between two images: none more
                    break
        except gr.Error as error:
            cause = error.__cause__
            refused = isinstance(cause, StudioError) or cause is None  # None: a limit the runner checks
            raise ClientError(400 if refused else 500, str(error.message)) from error
        finally:
            results.close()  # a stopped run lets its models go now
        return made

    def _saved(self, result: GeneratedImage, owner: str) -> Made:
        try:
            path = self.studio.history.save(result.image, result.parameters, owner, result.png_chunks)
        except ResultNotSaved:
            path = None  # answered all the same, from memory
        return Made(result.image, result.parameters, path)

    def stop(self, visitor: str, *, skip: bool = False) -> bool:
        """End `visitor`'s oldest client job, the one running or next to (`skip`: only its current batch,
        as A1111's Skip does); whether there was one. Their later requests still run, as on A1111."""
        with self._lock:
            job = next((job for job in self._jobs if job.visitor == visitor), None)
        if job is None:
            return False
        if skip:
            job.skipped = True
        else:
            job.interrupted = True
        if job.session is not None:
            self.studio.runner.runs.stop(job.session)
        return True


def caller_visitor(http: HttpRequest, username: str | None) -> str:
    return visitor_of(gr.Request(http, username=username))
