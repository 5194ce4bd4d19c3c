"""Named endpoints declared as data: each parameter once, with its component, its default and its meaning.

Gradio reads an event function's signature for the API's parameter names and defaults, and its docstring's
`Args:` for their descriptions (the API page, and the tool schemas agents get). Writing those by hand for
every endpoint restated the same nine prompt parameters five times, and the defaults of the request types
beside them. Here an endpoint is declared from `Parameter`s, whose defaults come from the request types,
and `Endpoint.fn` is a function with exactly that signature and docstring.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from studio.core.requests import Request
from studio.ui.common import checked_by_request

Run = Callable[[dict[str, Any], gr.Request, gr.Progress], Any]
IMAGE_FILE = str | None  # what an image parameter is in the API: a file
REQUIRED = inspect.Parameter.empty  # the default of a parameter every call must give (an endpoint's image)


@dataclass(frozen=True)
class Parameter:
    """One parameter of a named endpoint."""

    name: str
    component: gr.components.Component  # what feeds it in the page
    annotation: Any  # its type in the API
    default: Any  # what a caller who leaves it out gets
    doc: str  # what it means and which values it takes

    def described(self, doc: str) -> Parameter:
        return replace(self, doc=doc)


def field(
    request_type: type[Request],
    name: str,
    component: gr.components.Component,
    doc: str,
    *,
    annotation: Any = None,
    parameter: str | None = None,
) -> Parameter:
    """A parameter for the request field `name`, with the field's own type and default; a numeric field's
    doc ends with the values it takes, from the request's bounds ("… Takes 0 to 30.")."""
    info = request_type.model_fields[name]
    accepted = request_type.range_text(name)
    doc = f"{doc} Takes {accepted}." if accepted else doc
    return Parameter(parameter or name, component, annotation or info.annotation, info.default, doc)


def control(name: str, component: gr.components.Component, annotation: Any, doc: str) -> Parameter:
    """A parameter with no request field of its own (a page control such as a mode switch): its default is
    the control's initial value, as Gradio's API takes it."""
    return Parameter(name, component, annotation, component.value, doc)


def present(values: dict[str, Any]) -> dict[str, Any]:
    """Request values from what the page or an API call sent: an empty field (None or "") is left out, so
    the request type's default applies (for steps, guidance and sampler: the model preset's)."""
    return {name: value for name, value in values.items() if value is not None and value != ""}


class Endpoint:
    """An event function with the declared parameters; `run(values, request, progress)` does the work.

    `streams` makes it a generator (results shown as they arrive), else it returns once.
    """

    def __init__(
        self, name: str, summary: str, parameters: Sequence[Parameter], run: Run, *, streams: bool = True
    ) -> None:
        self.name = name  # the API's name, and the tool's over MCP (which reads the function's name)
        self.parameters = list(parameters)
        self.inputs = [checked_by_request(parameter.component) for parameter in self.parameters]
        count = len(self.parameters)

        def split(args: tuple) -> tuple[dict[str, Any], gr.Request, gr.Progress]:
            # Gradio passes the inputs, then the request and progress it inserts by the signature.
            names = [parameter.name for parameter in self.parameters]
            return dict(zip(names, args[:count], strict=True)), args[count], args[count + 1]

        if streams:

            def fn(*args: Any) -> Iterator[Any]:
                yield from run(*split(args))

        else:

            def fn(*args: Any) -> Any:
                return run(*split(args))

        signature = [
            inspect.Parameter(
                p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default, annotation=p.annotation
            )
            for p in self.parameters
        ]
        signature += [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request
            ),
            inspect.Parameter(
                "progress",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=gr.Progress(),
                annotation=gr.Progress,
            ),
        ]
        fn.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in signature}
        fn.__doc__ = summary + "\n\nArgs:\n" + "\n".join(f"    {p.name}: {p.doc}" for p in self.parameters)
        fn.__name__ = fn.__qualname__ = name
        self.fn = fn
