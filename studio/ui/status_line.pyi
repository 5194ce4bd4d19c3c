"""A line of text beside a result, for what the page says about it, kept out of the API."""

import gradio as gr

from gradio.events import Dependency

class StatusLine(gr.Markdown):
    """What the page says about a result (progress, "Stopped after 1 of 4 images", a refusal), beside it,
    where the result would otherwise be covered. Not part of the API: callers get errors instead.

    (Gradio writes an interface stub, status_line.pyi, beside any component class; it is kept in the
    repository so nothing is written at run time.)
    """

    is_template = True  # drawn by Gradio's own Markdown component

    @property
    def skip_api(self) -> bool:
        return True
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component