"""The Blend tab (Midjourney's /blend): 2-5 images, each weighted, an optional prompt and an aspect ratio
in; a grid of new images out, from the images' IP-Adapter embeddings (FLUX.1: Redux tokens) mixed by
weight."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.blend import MAX_BLEND_IMAGES, BlendRequest
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import Endpoint, present
from studio.ui.grid_actions import create_grid_actions, wire_generation
from studio.ui.i18n import tr
from studio.ui.reference_images import ReferenceSlots, reference_slots
from studio.ui.runner import Job
from studio.ui.send_to import Sent
from studio.ui.widgets.aspect_ratio import (
    aspect_ratio_box,
    aspect_ratio_parameter,
    shaped_outputs,
    shaped_values,
)
from studio.ui.widgets.prompt_controls import prompt_box, prompt_settings
from studio.ui.widgets.result_panel import ResultPanel

TAB = TabInfo("blend", "Blend")


@dataclass
class BlendTab:
    images: ReferenceSlots
    results: ResultPanel


def create_tab(studio: Studio) -> BlendTab:
    pipeline = studio.pipeline("blend")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            gr.Markdown(
                tr(
                    "Give 2 to 5 images: their subjects and looks are mixed by weight into new pictures. A "
                    "prompt is optional and steers the blend."
                )
            )
            images = reference_slots(
                "blend-image",
                MAX_BLEND_IMAGES,
                "Image",
                images_field="images",
                weights_field="image_weights",
                slot="image",
                max_side=studio.settings.max_image_side,
                height=130,
            )
            prompt = prompt_box("blend", "Optional: what the blend should become…")
            with gr.Row(elem_classes=["run-buttons"]):
                generate = gr.Button(
                    tr("Blend"), variant="primary", elem_id="blend-generate", scale=2, min_width=0
                )
                reroll = gr.Button(tr("Reroll"), elem_id="blend-reroll", scale=1, min_width=0)
                stop = gr.Button(tr("Stop"), variant="stop", elem_id="blend-stop", scale=1, min_width=0)
            aspect_ratio = aspect_ratio_box("blend", studio.presets, BlendRequest.default("aspect_ratio"))
            controls = prompt_settings("blend", prompt, studio, loras=pipeline.loras)
        with gr.Column(scale=3, min_width=360):
            results = ResultPanel("blend", studio, reroll=reroll)
            actions = create_grid_actions("blend", studio, results, controls)

    parameters = [
        *images.parameters("Image to blend"),
        *controls.parameters("optional: what the blend should become."),
        aspect_ratio_parameter(BlendRequest, aspect_ratio),
        *controls.later_parameters(),
    ]

    def blend(values, request, progress):
        yield from results.run(Job("blend", images.gathered(present(values))), request, progress)

    endpoint = Endpoint(
        "blend",
        "Blend 2-5 images into 1-4 new ones (Midjourney's /blend): their IP-Adapter embeddings (FLUX.1: "
        "Redux tokens) mixed by weight, with an optional prompt. Returns the PNGs (parameters embedded) and "
        "each image's parameters.",
        parameters,
        blend,
    )
    shape = {"aspect_ratio": aspect_ratio}
    wire_generation(
        studio, endpoint, pipeline, controls, results, actions, generate=generate, stop=stop, shape=shape
    )
    results.restore_on_open(
        shaped_outputs(controls, aspect_ratio),
        lambda values: shaped_values(controls, aspect_ratio, Sent.of(None, values), studio.presets),
    )
    return BlendTab(images, results)
