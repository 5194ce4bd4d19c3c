"""The aspect-ratio box of the tasks that make a new picture, and the settings it restores with."""

from __future__ import annotations

import gradio as gr

from pipelines.diffusion import DiffusionRequest
from studio.core.presets import ASPECT_RATIO_RANGE_TEXT, Presets
from studio.ui.endpoints import Parameter, field
from studio.ui.i18n import tr
from studio.ui.send_to import Sent, Updates, sent_values
from studio.ui.widgets.prompt_controls import PromptControls


def aspect_ratio_box(prefix: str, presets: Presets, default: str) -> gr.Dropdown:
    """The presets to pick from, and any other width:height typed in (or moved here from `--ar`)."""
    return gr.Dropdown(
        choices=list(presets.aspect_ratios),
        value=default,
        allow_custom_value=True,
        label=tr("Aspect ratio"),
        info=tr(f"A preset, or type any width:height from {ASPECT_RATIO_RANGE_TEXT}"),
        elem_id=f"{prefix}-aspect-ratio",
    )


def aspect_ratio_parameter(request_type: type[DiffusionRequest], box: gr.Dropdown) -> Parameter:
    return field(
        request_type,
        "aspect_ratio",
        box,
        f'a preset ("1:1", "16:9"…) or any width:height from {ASPECT_RATIO_RANGE_TEXT}, e.g. "2:1".',
    )


def shaped_outputs(controls: PromptControls, aspect_ratio: gr.Dropdown) -> list[gr.components.Component]:
    """`received_outputs` with the aspect ratio, for a task that makes a new picture."""
    return [*controls.received_outputs, aspect_ratio]


def shaped_values(
    controls: PromptControls, aspect_ratio: gr.Dropdown, sent: Sent, presets: Presets
) -> Updates:
    """The values of `shaped_outputs`: the settings received, and the aspect ratio the image recorded (else
    the one that makes its shape)."""
    has_size = sent.width and sent.height
    shape = sent.aspect_ratio or (presets.ratio_of(sent.width, sent.height) if has_size else None)
    return sent_values({**controls.received(sent, presets), aspect_ratio: shape})
