"""The Text to Image tab: prompt, styles, model and shape in; a grid of PNGs with their parameters out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from pipelines.common import MAX_SEED
from pipelines.diffusion import DiffusionRequest
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.metadata import GenerationParameters, read_parameters
from studio.ui.common import INSTANT_EVENT
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import Endpoint, control, field, present
from studio.ui.grid_actions import GridActions, create_grid_actions, wire_enhance, wire_vary
from studio.ui.i18n import say, say_phrases, tr
from studio.ui.image_prompt_panel import create_image_prompt_panel
from studio.ui.runner import Job
from studio.ui.send_to import Sent
from studio.ui.widgets import PromptControls, ResultPanel, gallery_path, prompt_box, prompt_settings

TAB = TabInfo("txt2img", "Text to Image")


@dataclass
class TextToImageTab:
    controls: PromptControls
    aspect_ratio: gr.Radio
    results: ResultPanel
    actions: GridActions


def create_tab(studio: Studio) -> TextToImageTab:
    presets = studio.presets
    pipeline = studio.pipeline("txt2img", TextToImagePipeline, style_codes=True)

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("txt2img", "A lighthouse on a cliff at dawn, waves crashing…")
            batch = gr.Checkbox(
                value=False,
                label=tr("One prompt per line: a run for each, in turn"),
                elem_id="txt2img-batch",
                container=False,
            )
            with gr.Row():  # one row: min_width 0, or Gradio wraps Stop onto a line of its own
                generate = gr.Button(
                    tr("Generate"), variant="primary", elem_id="txt2img-generate", scale=2, min_width=0
                )
                reroll = gr.Button(tr("Reroll"), elem_id="txt2img-reroll", scale=1, min_width=0)
                stop = gr.Button(tr("Stop"), variant="stop", elem_id="txt2img-stop", scale=1, min_width=0)
            aspect_ratio = gr.Radio(
                choices=list(presets.aspect_ratios),
                value=TextToImageRequest.default("aspect_ratio"),
                label=tr("Aspect ratio"),
                elem_id="txt2img-aspect-ratio",
            )
            controls = prompt_settings("txt2img", prompt, studio, loras=pipeline.loras)
            image_prompts = create_image_prompt_panel("txt2img", studio, prompt, controls.model)
        with gr.Column(scale=3, min_width=360):
            results = ResultPanel("txt2img", studio, reroll=reroll)
            actions = create_grid_actions("txt2img", studio, results, controls)

    parameters = controls.parameters("what to draw.")
    aspect = field(
        TextToImageRequest, "aspect_ratio", aspect_ratio, 'an aspect ratio preset, e.g. "1:1", "16:9".'
    )
    parameters.insert(4, aspect)  # the API's order since it was first published
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
        "Make 1-4 images from a prompt. Returns the PNGs (parameters embedded) and each image's parameters.",
        parameters,
        txt2img,
    )
    shape = {"aspect_ratio": aspect_ratio, **image_prompts.settable}
    events = [
        controls.read_prompt_first(generate.click, pipeline, shape).success(
            endpoint.fn, endpoint.inputs, results.outputs, api_name=endpoint.name, **results.event_options
        ),
        controls.read_prompt_first(prompt.submit, pipeline, shape).success(
            endpoint.fn, endpoint.inputs, results.outputs, api_visibility="private", **results.event_options
        ),
    ]
    events += wire_vary(actions, results, studio, controls.num_images)
    events += wire_enhance(actions, results, studio)
    results.connect(events, stop)

    def fill(sent: Sent) -> tuple:
        """The fields from an image's parameters, another studio's mapped to ours; what has no equivalent
        here is left as it is and named in a note. "Use seed" fills the seed alone."""
        if sent.seed_only:
            return (gr.skip(),) * 3 + (sent.seed,) + (gr.skip(),) * 9
        if sent.prompt_only:
            return (sent.prompt,) + (gr.skip(),) * 12
        notes = []
        sampler = presets.sampler_named(sent.sampler, sent.scheduler)
        if sent.sampler and sampler is None:
            named = " ".join(part for part in (sent.sampler, sent.scheduler) if part)
            notes.append(f"its sampler {named} has no equivalent here, so the current one stays")
        seed = -1 if sent.seed is None else sent.seed
        if not -1 <= seed <= MAX_SEED:
            seed = sent.seed % (MAX_SEED + 1)
            notes.append(f"its seed {sent.seed} is beyond this studio's 0–{MAX_SEED}, so {seed} is used")
        known_model = sent.model and (sent.model in presets.models or Path(sent.model).exists())
        if sent.model and not known_model:
            notes.append(f"its model {sent.model} is not on this studio, so the current one stays")
        if notes:
            gr.Info(say(f"From {sent.generator or 'the image'}:") + " " + say_phrases(notes, opens=False))
        has_size = sent.width and sent.height
        return (
            sent.prompt,
            sent.negative_prompt,
            [style for style in sent.styles if style in presets.styles],
            seed,
            sent.steps or gr.skip(),
            gr.skip() if sent.guidance_scale is None else sent.guidance_scale,
            sampler or gr.skip(),
            sent.model if known_model else gr.skip(),
            presets.nearest_aspect_ratio(sent.width, sent.height) if has_size else gr.skip(),
            sent.loras,
            sent.tile,
            0,  # under --chaos an image records the settings drawn for it: they make it again as they are
            DiffusionRequest.default("stylize") if sent.stylize is None else sent.stylize,
        )

    c = controls
    fields = [c.prompt, c.negative_prompt, c.styles, c.seed, c.steps, c.guidance_scale, c.sampler, c.model]
    midjourney = [c.loras, c.tile, c.chaos, c.stylize]
    studio.send_to.receive(TAB.id, [*fields, aspect_ratio, *midjourney], fill)

    def settings_of_grid(gallery_value: list | None) -> Any:
        """A page opened from a link shows its grid again (Gradio's deep links): the parameters its first
        image carries. A fresh page has no grid, and nothing changes."""
        recorded = read_parameters(gallery_path(gallery_value[0])) if gallery_value else None
        if recorded is None:
            return gr.skip()
        return recorded.to_dict() if isinstance(recorded, GenerationParameters) else recorded

    # Only a page with a grid fills the fields: on a fresh one the state stays unchanged and nothing
    # fires, so nothing typed meanwhile is overwritten (and no control is rebuilt).
    grid_settings = gr.State(None)
    studio.when_loaded(settings_of_grid, [results.gallery], [grid_settings])
    restored = [*fields, aspect_ratio, *midjourney]

    def fill_from_grid(values: dict) -> tuple:
        return fill(Sent.of(None, values))

    grid_settings.change(fill_from_grid, [grid_settings], restored, **INSTANT_EVENT)
    return TextToImageTab(controls, aspect_ratio, results, actions)
