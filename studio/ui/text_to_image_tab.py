"""The Text to Image tab: prompt, styles, model and shape in; a grid of PNGs with their parameters out."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.text_to_image import TextToImageRequest
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import Endpoint, control, present
from studio.ui.grid_actions import GridActions, create_grid_actions, wire_generation
from studio.ui.i18n import tr
from studio.ui.image_prompt_panel import create_image_prompt_panel
from studio.ui.runner import Job
from studio.ui.send_to import Sent, Updates
from studio.ui.widgets.aspect_ratio import (
    aspect_ratio_box,
    aspect_ratio_parameter,
    shaped_outputs,
    shaped_values,
)
from studio.ui.widgets.prompt_controls import PromptControls, prompt_box, prompt_settings
from studio.ui.widgets.result_panel import ResultPanel

TAB = TabInfo("txt2img", "Text to Image")


@dataclass
class TextToImageTab:
    controls: PromptControls
    aspect_ratio: gr.Dropdown
    results: ResultPanel
    actions: GridActions


def create_tab(studio: Studio) -> TextToImageTab:
    presets = studio.presets
    pipeline = studio.pipeline("txt2img")

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("txt2img", "A lighthouse on a cliff at dawn, waves crashing…")
            batch = gr.Checkbox(
                value=False,
                label=tr("One prompt per line: a run for each, in turn"),
                elem_id="txt2img-batch",
                container=False,
            )
            with gr.Row(elem_classes=["run-buttons"]):  # one row: min_width 0, or Stop wraps below
                generate = gr.Button(
                    tr("Generate"), variant="primary", elem_id="txt2img-generate", scale=2, min_width=0
                )
                reroll = gr.Button(tr("Reroll"), elem_id="txt2img-reroll", scale=1, min_width=0)
                stop = gr.Button(tr("Stop"), variant="stop", elem_id="txt2img-stop", scale=1, min_width=0)
            aspect_ratio = aspect_ratio_box("txt2img", presets, TextToImageRequest.default("aspect_ratio"))
            controls = prompt_settings("txt2img", prompt, studio, loras=pipeline.loras)
            image_prompts = create_image_prompt_panel("txt2img", studio, prompt, controls.model)
        with gr.Column(scale=3, min_width=360):
            results = ResultPanel("txt2img", studio, reroll=reroll)
            actions = create_grid_actions("txt2img", studio, results, controls)

    parameters = controls.parameters("what to draw.")
    # The API's order since it was first published.
    parameters.insert(4, aspect_ratio_parameter(TextToImageRequest, aspect_ratio))
    parameters.append(
        control("batch", batch, bool, "true: each line of the prompt is a prompt of its own, run in turn.")
    )
    parameters += controls.later_parameters()
    parameters += image_prompts.parameters()

    def txt2img(values, request, progress):
        values = image_prompts.gathered(present(values))
        lines = tuple(line.strip() for line in values.get("prompt", "").splitlines() if line.strip())
        if values.pop("batch", False) and len(lines) > 1:
            job = Job("txt2img", values, f"{len(lines)} prompts", prompts=lines)
        else:
            job = Job("txt2img", values)
        yield from results.run(job, request, progress)

    endpoint = Endpoint(
        "txt2img",
        f"Make {TextToImageRequest.range_text('num_images')} images from a prompt. Returns the PNGs "
        "(parameters embedded) and each image's parameters.",
        parameters,
        txt2img,
    )
    shape = {"aspect_ratio": aspect_ratio, **image_prompts.settable}
    wire_generation(
        studio, endpoint, pipeline, controls, results, actions, generate=generate, stop=stop, shape=shape
    )
    # Sent here to render at once (Live's Enhance).
    studio.send_to.action(TAB.id, "generate", endpoint.fn, endpoint.inputs, results.outputs,
                          after=results.select_first_after, **results.event_options)  # fmt: skip

    c = controls
    outputs = shaped_outputs(c, aspect_ratio)

    def fill(sent: Sent) -> Updates:
        """The fields from what was sent (see `PromptControls.received`) and its aspect ratio."""
        return shaped_values(c, aspect_ratio, sent, presets)

    studio.send_to.receive(TAB.id, outputs, fill)
    results.restore_on_open(outputs, lambda values: fill(Sent.of(None, values)))
    return TextToImageTab(controls, aspect_ratio, results, actions)
