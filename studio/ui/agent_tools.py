"""Every named endpoint as a tool for AI agents, over Gradio's MCP server (`--mcp`).

The tools' names, descriptions and parameter meanings come from the endpoints themselves
(studio/ui/endpoints.py: the function's name and its docstring's `Args:`). One fix to Gradio is needed:
its MCP server drops the values of `gr.State` outputs by position from what a queued call returns, but
that answer, from Gradio's own client, never held them, so any endpoint with state (every result grid's)
failed with "pop index out of range".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr


def without_state_values(components: Sequence[Any], data: list) -> list:
    """`data` without the values of the State outputs among `components`, where it holds one value for
    each output (a direct call's answer); else as it came (a queued call's, which left them out)."""
    if len(data) != len(components):
        return data
    pairs = zip(components, data, strict=True)
    return [value for component, value in pairs if not isinstance(component, gr.State)]


def serve_tools() -> None:
    from gradio.mcp import GradioMCPServer

    GradioMCPServer.pop_returned_state = staticmethod(without_state_values)
