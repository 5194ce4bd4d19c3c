"""What every tab shares: the GPU concurrency group, error messages, widgets from requests."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

from pipelines.common import Request
from studio.core.errors import StudioError
from studio.core.metadata import GenerationParameters

log = logging.getLogger(__name__)

# Every event that computes on the GPU joins this one group, limited to one job at a time: Gradio's limit is
# per event, so without it four tabs would run four jobs at once.
GPU_EVENT = {"concurrency_id": "gpu", "concurrency_limit": 1}
# Cheap events (filling fields, showing parameters) skip the queue and never wait behind a GPU job.
INSTANT_EVENT = {"queue": False, "api_visibility": "private"}


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "api"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn failures into a message in the UI (and the API's error text); the app keeps serving."""
    try:
        yield
    except gr.Error:
        raise
    except StudioError as error:
        raise gr.Error(str(error), print_exception=False) from error
    except Exception as error:
        log.exception("unexpected failure")
        raise gr.Error(
            f"Unexpected error ({type(error).__name__}: {error}). Nothing already made was lost; "
            "the details are in the server log."
        ) from error


def readable(component: gr.components.Component) -> gr.components.Component:
    """Make an image input say clearly when a file is not a picture, instead of failing inside Gradio."""
    preprocess = component.preprocess

    def checked_preprocess(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except (OSError, SyntaxError, ValueError) as error:  # what PIL raises for unreadable files
            name = getattr(payload, "orig_name", None) or "The file"
            raise gr.Error(
                f"{name} could not be read as an image ({error}).", print_exception=False
            ) from error

    component.preprocess = checked_preprocess  # type: ignore[method-assign]
    return component


def slider(request_type: type[Request], name: str, *, step: float = 1, **options: Any) -> gr.Slider:
    """A slider whose range is the request field's bounds, so the UI and validation never disagree
    (`maximum` may only lower the upper bound, as a server limit does)."""
    low, high = request_type.bounds(name)
    high = min(high, options.pop("maximum", high))
    default = request_type.default(name)
    return gr.Slider(minimum=low, maximum=high, step=step, value=options.pop("value", default), **options)


def gradio_progress(progress: gr.Progress, desc: str) -> Callable[[int, int], None]:
    def report(step: int, total: int) -> None:
        progress((step, total), desc=desc, unit="steps")

    return report


def describe_parameters(parameters: dict | None) -> str:
    if not parameters:
        return ""
    return GenerationParameters.from_dict(parameters).to_text()
