"""The Text to Image tab: prompt, styles, model and shape in; a grid of PNGs with their parameters out."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.text_to_image import TextToImageRequest
from studio.presets import Presets
from studio.ui.common import GPU_EVENT
from studio.ui.grid_actions import GridActions, create_grid_actions, wire_vary
from studio.ui.widgets import (
    JobRunner,
    PromptControls,
    ResultPanel,
    prompt_box,
    prompt_settings,
    prompt_values,
    result_panel,
    show_first_result,
)


@dataclass
class TextToImageTab:
    """What other tabs and app.py reach: the fields PNG Info fills, the grid Send-to reads."""

    controls: PromptControls
    aspect_ratio: gr.Radio
    results: ResultPanel
    actions: GridActions


def create_tab(runner: JobRunner, presets: Presets, default_model: str | None = None) -> TextToImageTab:
    default_model = default_model or presets.default_model

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("txt2img", "A lighthouse on a cliff at dawn, waves crashing…")
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="txt2img-generate", scale=2)
                reroll = gr.Button("Reroll", elem_id="txt2img-reroll", scale=1)
                stop = gr.Button("Stop", variant="stop", elem_id="txt2img-stop", scale=1)
            aspect_ratio = gr.Radio(
                choices=list(presets.aspect_ratios),
                value=TextToImageRequest.default("aspect_ratio"),
                label="Aspect ratio",
                elem_id="txt2img-aspect-ratio",
            )
            controls = prompt_settings(
                "txt2img", prompt, presets, default_model, max_images=runner.max_images
            )
        with gr.Column(scale=3, min_width=360):
            results = result_panel("txt2img")
            actions = create_grid_actions("txt2img", presets)

    job = gr.State(None)  # the last job, for Reroll

    def txt2img(
        prompt: str,
        negative_prompt: str = "",
        styles: list[str] | None = None,
        model: str | None = None,
        aspect_ratio: str = "1:1",
        num_images: int = 1,
        seed: int = -1,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ):
        """Make 1-4 images from a prompt. Returns the PNGs (parameters embedded) and each image's parameters.

        Args:
            prompt: what to draw.
            negative_prompt: what to keep out.
            styles: style preset names, stacked in order.
            model: model preset name, hub id, local folder or .safetensors path; left out: --model.
            aspect_ratio: one of the aspect ratio presets, e.g. "1:1", "16:9".
            num_images: 1 to 4; image i uses seed + i.
            seed: -1 for random.
            steps: denoising steps; left out, the model preset's.
            guidance_scale: classifier-free guidance; left out, the model preset's.
            sampler: sampler name, e.g. "Euler a"; left out, the model preset's.
        """
        values = prompt_values(
            prompt, negative_prompt, styles, model, num_images, seed, steps, guidance_scale, sampler
        )
        values["aspect_ratio"] = aspect_ratio
        yield from runner.run("txt2img", values, request, progress)

    c = controls
    inputs = [c.prompt, c.negative_prompt, c.styles, c.model, aspect_ratio, c.num_images, c.seed]
    inputs += [c.steps, c.guidance_scale, c.sampler]
    outputs = [results.gallery, results.parameters, job]
    events = [
        generate.click(txt2img, inputs, outputs, api_name="txt2img", **GPU_EVENT),
        prompt.submit(txt2img, inputs, outputs, api_visibility="private", **GPU_EVENT),
        reroll.click(runner.reroll, [job], outputs, api_visibility="private", **GPU_EVENT),
    ]
    events += wire_vary(actions, results, job, runner, presets, controls.num_images)
    show_first_result(results, *events)
    runner.stop_button(stop, events)
    return TextToImageTab(controls, aspect_ratio, results, actions)
