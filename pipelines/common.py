"""What every task pipeline shares: typed requests, progress and cancellation callables, seeds.

Pipelines know nothing of the UI. A run takes `progress(step, total)` to report and `is_cancelled()` to
poll; the denoising callback raises `RunCancelled` as soon as Stop is pressed, so the GPU stops at the next
step instead of finishing the image.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, ValidationError

from studio.core.errors import InvalidRequest, RunCancelled

Progress = Callable[[int, int], None]
IsCancelled = Callable[[], bool]

MAX_SEED = 2**32 - 1


def no_progress(step: int, total: int) -> None:
    return None


def never_cancelled() -> bool:
    return False


class Request(BaseModel):
    """Base of typed requests: unknown fields are errors; field bounds also set the UI's sliders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def bounds(cls, name: str) -> tuple[float, float]:
        """The (minimum, maximum) a numeric field accepts."""
        low = high = None
        for rule in cls.model_fields[name].metadata:
            if isinstance(rule, Ge):
                low = rule.ge
            elif isinstance(rule, Le):
                high = rule.le
        if low is None or high is None:
            raise KeyError(f"{cls.__name__}.{name} has no bounds")
        return low, high

    @classmethod
    def default(cls, name: str) -> Any:
        return cls.model_fields[name].default


RequestT = TypeVar("RequestT", bound=Request)


def parse_request(request_type: type[RequestT], values: dict[str, Any]) -> RequestT:
    """Validate `values` into a request; every problem becomes one concise `InvalidRequest` naming the
    field ("Seed must be between -1 and 4294967295 (got 99999999999).")."""
    try:
        return request_type.model_validate(values)
    except ValidationError as error:
        problems = [_problem(request_type, problem) for problem in error.errors()]
        raise InvalidRequest("; ".join(problems) + ".") from error


def field_title(request_type: type[Request], name: str) -> str:
    """How messages name a field: its title ("Images (num_images)"), else its name in words ("Seed")."""
    info = request_type.model_fields.get(name)
    title = info.title if info is not None and info.title else name.replace("_", " ").capitalize()
    return title if title.lower() == name.replace("_", " ") else f"{title} ({name})"


def _problem(request_type: type[Request], problem: dict[str, Any]) -> str:
    location = [str(part) for part in problem["loc"]]
    name = location[0] if location else "request"
    if problem["type"] == "extra_forbidden":
        return f"{name} is not a known parameter"
    title = field_title(request_type, name) + "".join(f" [{part}]" for part in location[1:])
    got, context = problem.get("input"), problem.get("ctx") or {}
    if problem["type"] in {"greater_than_equal", "less_than_equal"}:
        if len(location) == 1:
            low, high = request_type.bounds(name)
            return f"{title} must be between {_plain(low)} and {_plain(high)} (got {got!r})"
        side = "at least" if "ge" in context else "at most"
        return f"{title} must be {side} {_plain(context.get('ge', context.get('le')))} (got {got!r})"
    if problem["type"] == "value_error":  # a check across fields, which words its own message
        return str(context.get("error", problem["msg"]))
    if problem["type"] == "literal_error":
        return f"{title} must be one of {context.get('expected', '')} (got {got!r})"
    if problem["type"] == "string_too_long":
        return f"{title} is too long: at most {context.get('max_length')} characters"
    return f"{title}: {problem['msg'][0].lower()}{problem['msg'][1:]}"


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def resolve_seed(seed: int) -> int:
    """-1 means a new random seed."""
    return secrets.randbelow(MAX_SEED + 1) if seed < 0 else seed


def image_seed(base_seed: int, index: int) -> int:
    """Image i of a run with seed s uses seed s+i, so any image can be made again on its own."""
    return (base_seed + index) % (MAX_SEED + 1)


def generator_for(seed: int) -> torch.Generator:
    # A CPU generator draws the same noise whatever the device, so a seed means the same image everywhere.
    return torch.Generator("cpu").manual_seed(seed)


class StepReporter:
    """A diffusers `callback_on_step_end` reporting progress over several images and obeying Stop."""

    def __init__(self, progress: Progress, is_cancelled: IsCancelled, images: int) -> None:
        self.progress = progress
        self.is_cancelled = is_cancelled
        self.images = images
        self.image_index = 0

    def check(self) -> None:
        if self.is_cancelled():
            raise RunCancelled()

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        # Pipelines set _num_timesteps to the loop's length (image-to-image runs only part of the schedule).
        steps = getattr(pipe, "_num_timesteps", None) or len(pipe.scheduler.timesteps)
        self.progress(self.image_index * steps + min(step + 1, steps), self.images * steps)
        self.check()
        return callback_kwargs
