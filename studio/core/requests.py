"""Typed requests: what every operation takes, validated before it runs.

Unknown fields are errors; field bounds and defaults are declared once here and also set the UI's sliders,
the endpoints' defaults and the command line's flags. Every problem becomes one `InvalidRequest` that names
the field ("Seed must be between -1 and 4294967295 (got 99999999999).").
"""

from __future__ import annotations

from typing import Any, TypeVar

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, ValidationError

from studio.core.access import Reference
from studio.core.errors import InvalidRequest

MAX_INPUT_SIDE = 2048  # longer side of an input image, in pixels; larger inputs are refused, not shrunk


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
    def range_text(cls, name: str) -> str | None:
        """The values a numeric field accepts, as help texts say them ("0 to 30"); None when unbounded."""
        try:
            low, high = cls.bounds(name)
        except KeyError:
            return None
        return f"{_number(low)} to {_number(high)}"

    @classmethod
    def default(cls, name: str) -> Any:
        return cls.model_fields[name].default

    def references(self) -> list[Reference]:
        """The models this request names by name or path, which a studio others can reach restricts."""
        return []


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


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
