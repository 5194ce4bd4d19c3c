"""The one contract every task keeps (the tasks themselves are listed in pipelines/registry.py).

A task declares what the job runner, the command line and ZeroGPU need to know of it as class attributes
(as diffusers' pipelines declare `_optional_components`), is built one way, `Task(cache, presets,
style_codes, upscalers_dir, loras_dir)`, taking what it uses, and streams its results from `generate`. Nothing
discovers a capability by looking at a task's methods or signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pipelines.parts.common import IsCancelled, Progress, never_cancelled, no_progress
from pipelines.parts.previews import PreviewSink, no_preview
from studio.core.cache import ModelCache
from studio.core.presets import Presets
from studio.core.requests import Request
from studio.core.style_codes import StyleCodes


class Task:
    task: ClassVar[str]  # what its results record, e.g. "txt2img"
    request_type: ClassVar[type[Request]]
    progress_label: ClassVar[str] = "Denoising"  # what the progress bar says
    reads_prompt_parameters: ClassVar[bool] = False  # moves `--ar 16:9`, `<lora:x>`... to their fields
    shows_previews: ClassVar[bool] = False  # sends unfinished images to `preview` while it works
    backends: ClassVar[tuple[str, ...]] = ("torch",)  # what can run its models
    steered_by_taste: ClassVar[bool] = False  # a taste profile (`--p`) picks the best of its drafts

    def __init__(
        self,
        cache: ModelCache,
        presets: Presets,
        style_codes: StyleCodes | None = None,
        upscalers_dir: Path | None = None,
        loras_dir: Path | None = None,
    ) -> None:
        self.cache = cache
        self.presets = presets
        self.style_codes = style_codes
        self.upscalers_dir = upscalers_dir
        self.loras_dir = loras_dir  # where LoRAs named by file live (--loras)
        self.setup()

    def setup(self) -> None:
        """What the task builds once from what it was given (its adapters, its styles): a task's own state
        without a constructor of its own."""

    def generate(
        self,
        request: Any,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
        preview: PreviewSink = no_preview,
    ) -> Iterator[Any]:
        """Each result as soon as it is made; Stop (`is_cancelled`) raises `RunCancelled`."""
        raise NotImplementedError

    def read_prompt_parameters(
        self, values: dict[str, Any], **options: Any
    ) -> tuple[dict[str, Any], list[str]]:
        """The request values with parameters typed in the prompt moved to their fields, and notes on what
        was not honoured; a task without a prompt takes them as they are."""
        return values, []

    def __call__(
        self, request: Any, progress: Progress = no_progress, is_cancelled: IsCancelled = never_cancelled
    ) -> list[Any]:
        return list(self.generate(request, progress, is_cancelled))


class OneResultTask(Task):
    """A task that makes one result: `__call__` returns it, and `generate` streams it, the shape the job
    runner takes from every task."""

    def __call__(
        self, request: Any, progress: Progress = no_progress, is_cancelled: IsCancelled = never_cancelled
    ) -> Any:
        raise NotImplementedError

    def generate(
        self,
        request: Any,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
        preview: PreviewSink = no_preview,
    ) -> Iterator[Any]:
        yield self(request, progress, is_cancelled)
