"""The Upscale tab: super-resolution (fast) or super-resolution plus a diffusion detail pass (creative)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.upscale import UpscaleRequest
from studio.core.errors import ResultNotSaved
from studio.ui.common import GPU_EVENT, readable, slider
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import REQUIRED, Endpoint, Parameter, field, present
from studio.ui.grid_actions import open_image
from studio.ui.i18n import say, tr
from studio.ui.runner import Job
from studio.ui.send_to import Sent, Updates, image_and_prompt, sent_values
from studio.ui.status_line import StatusLine
from studio.ui.widgets.prompt_controls import PromptControls, prompt_box, prompt_settings
from studio.ui.widgets.result_panel import restore_on_open, status_warnings

TAB = TabInfo("upscale", "Upscale", takes_images=True)
SCALES = (2, 3, 4, 8)


@dataclass
class UpscaleTab:
    image: gr.Image
    upscaler: gr.Dropdown
    scale: gr.Radio
    mode: gr.Radio
    target_width: gr.Number
    target_height: gr.Number
    tile_size: gr.Slider
    upscale: gr.Button
    stop: gr.Button
    creative_strength: gr.Slider
    controls: PromptControls  # the creative pass's
    comparison: gr.ImageSlider
    result_file: gr.File
    status: StatusLine
    parameters_text: gr.Textbox

    @property
    def outputs(self) -> list[gr.components.Component]:
        """What a run fills: before/after, the PNG, its parameters and the status line."""
        return [self.comparison, self.result_file, self.parameters_text, self.status]


def create_tab(studio: Studio) -> UpscaleTab:
    pipeline = studio.pipeline("upscale")
    tab = layout(studio, pipeline.upscalers.names())
    endpoint = upscale_endpoint(studio, tab)
    # Progress on the status line: a failed run leaves the last result in view.
    options = {"show_progress_on": [tab.status], **GPU_EVENT}
    event = tab.controls.read_prompt_first(tab.upscale.click, pipeline).success(
        endpoint.fn, endpoint.inputs, tab.outputs, api_name=endpoint.name, **options
    )
    studio.runner.stop_button(tab.stop, [event], tab.status)
    prompt = tab.controls.prompt
    studio.send_to.receive(TAB.id, [tab.image, prompt], image_and_prompt(tab.image, prompt))
    studio.send_to.action(TAB.id, "upscale", endpoint.fn, endpoint.inputs, tab.outputs, **options)
    wire_restore(studio, tab)
    return tab


def layout(studio: Studio, upscaler_names: list[str]) -> UpscaleTab:
    default_upscaler = UpscaleRequest.default("upscaler")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            image = readable(
                gr.Image(
                    label=tr("Image to enlarge"),
                    type="filepath",
                    image_mode=None,  # the uploaded file itself, so its parameters carry over
                    format="png",
                    sources=["upload", "clipboard"],
                    height=300,
                    elem_id="upscale-image",
                ),
                studio.settings.max_image_side,
                enlarges=True,
            )
            upscaler = gr.Dropdown(
                choices=upscaler_names,
                value=default_upscaler if default_upscaler in upscaler_names else upscaler_names[-1],
                allow_custom_value=True,  # weights added to the folder later work without a restart
                label=tr("Upscaler"),
                info=tr(
                    "x4plus for photos, anime models for drawings; .pth names download official weights "
                    "on first use; your own weights go in the upscalers folder"
                ),
                elem_id="upscale-upscaler",
            )
            with gr.Row():
                scale = gr.Radio(
                    choices=list(SCALES),
                    value=UpscaleRequest.default("scale"),
                    label=tr("Scale"),
                    elem_id="upscale-scale",
                )
                mode = gr.Radio(
                    choices=[("Fast", "fast"), ("Creative (adds detail)", "creative")],
                    value=UpscaleRequest.default("mode"),
                    label=tr("Mode"),
                    elem_id="upscale-mode",
                )
            with gr.Accordion(tr("Exact size and tiles"), open=False):
                target_width, target_height, tile_size = size_controls()
            with gr.Row():
                upscale = gr.Button(tr("Upscale"), variant="primary", elem_id="upscale-generate", scale=2)
                stop = gr.Button(tr("Stop"), variant="stop", elem_id="upscale-stop", scale=1)
            with gr.Accordion(tr("Creative pass"), open=False):
                creative_strength = slider(
                    UpscaleRequest,
                    "creative_strength",
                    step=0.05,
                    label=tr("Detail strength"),
                    info=tr("How much the diffusion pass may change: 0.2-0.4 adds detail, more repaints"),
                )
                prompt = prompt_box("upscale", "Optional: describe the image to guide the added detail")
                controls = prompt_settings("upscale", prompt, studio, image_count=False)
        with gr.Column(scale=3, min_width=360):
            comparison = gr.ImageSlider(
                label=tr("Before / after"),
                type="filepath",
                format="png",
                height=520,
                elem_id="upscale-slider",
            )
            result_file = gr.File(label=tr("Result (lossless PNG with parameters)"), elem_id="upscale-file")
            status = StatusLine(elem_id="upscale-status", elem_classes=["grid-status"])
            parameters_text = gr.Textbox(
                label=tr("Parameters"), lines=3, interactive=False, elem_id="upscale-parameters"
            )
    return UpscaleTab(
        image, upscaler, scale, mode, target_width, target_height, tile_size, upscale, stop,
        creative_strength, controls, comparison, result_file, status, parameters_text,
    )  # fmt: skip


def size_controls() -> tuple[gr.Number, gr.Number, gr.Slider]:
    """An exact size instead of a scale, and the super-resolution's tile size."""
    with gr.Row():
        target_width = gr.Number(
            value=UpscaleRequest.default("target_width"),
            precision=0,
            label=tr("Width (0: from scale)"),
            minimum=0,
        )
        target_height = gr.Number(
            value=UpscaleRequest.default("target_height"),
            precision=0,
            label=tr("Height (0: from scale)"),
            minimum=0,
        )
    tile_size = slider(
        UpscaleRequest,
        "tile_size",
        step=32,
        label=tr("Tile size"),
        info=tr("Smaller tiles use less memory; the result is the same"),
    )
    return target_width, target_height, tile_size


def upscale_endpoint(studio: Studio, tab: UpscaleTab) -> Endpoint:
    """/upscale: run the upscale, save its result as the visitor's and show it beside the original."""

    def upscale_image(values: dict, request: gr.Request, progress: gr.Progress):
        path = values["image"]
        values = {**values, "image": open_image(path) if path else None, "scale": values["scale"] or None}
        notes: list[str] = []  # the prompt's unhonoured parameters, said beside the result
        results = list(studio.runner.run(Job("upscale", present(values)), request, progress, notes=notes))
        if not results:  # stopped before the result was made: what was shown stays
            return gr.skip(), gr.skip(), gr.skip(), say("Stopped before the upscale finished.")
        finished = results[-1]
        try:
            owner = studio.viewer(request).owner
            saved = str(studio.history.save(finished.image, finished.parameters, owner))
        except ResultNotSaved as error:  # shown all the same, from memory
            gr.Warning(say(str(error)))
            status = status_warnings(str(error), notes)
            return (path, finished.image), None, finished.parameters.to_text(), status
        return (path, saved), saved, finished.parameters.to_text(), status_warnings(None, notes)

    def upscale_field(name: str, component: gr.components.Component, doc: str) -> Parameter:
        return field(UpscaleRequest, name, component, doc)

    controls, max_side = tab.controls, studio.settings.max_image_side
    prompt_doc = "guides the creative pass (optional)."
    prompt_parameters = [
        p for p in controls.parameters(prompt_doc, mode="creative") if p.name != "num_images"
    ]
    return Endpoint(
        "upscale",
        "Enlarge an image. Returns (before, after), the lossless PNG, and its parameters.",
        [
            Parameter(
                "image",
                tab.image,
                str | None,
                REQUIRED,
                f"the image to enlarge (up to {max_side} px a side).",
            ),
            upscale_field(
                "upscaler", tab.upscaler, 'an upscaler name (see the dropdown), or "Lanczos (no model)".'
            ),
            upscale_field(
                "scale",
                tab.scale,
                f"{', '.join(map(str, SCALES))} on the page; ignored when a target size is given.",
            ),
            upscale_field("target_width", tab.target_width, "exact width, or 0."),
            upscale_field(
                "target_height",
                tab.target_height,
                "exact height, or 0 (one of the two keeps the aspect ratio).",
            ),
            upscale_field(
                "mode",
                tab.mode,
                '"fast" (super-resolution) or "creative" (plus a low-strength diffusion pass in tiles).',
            ),
            upscale_field(
                "tile_size",
                tab.tile_size,
                "input pixels per super-resolution tile; memory follows it, not the image.",
            ),
            upscale_field(
                "creative_strength", tab.creative_strength, "how much the creative pass may change."
            ),
            *prompt_parameters,
            *(p.described(f"creative mode: {p.doc}") for p in controls.later_parameters()),
        ],
        upscale_image,
        streams=False,
    )


def wire_restore(studio: Studio, tab: UpscaleTab) -> None:
    """A page opened from a link gets the settings of its result back (the image enlarged is not recorded)."""
    controls = tab.controls

    def restored(values: dict) -> Updates:
        extras = values.get("extras") or {}
        if values.get("task") != "upscale" or "upscale" not in extras:
            return {}
        creative = "creative_strength" in extras
        received = controls.received(Sent.of(None, values), studio.presets) if creative else {}
        recorded = {
            tab.upscaler: extras.get("upscaler"),
            tab.creative_strength: extras.get("creative_strength"),
        }
        sizes = [tab.scale, tab.target_width, tab.target_height]
        sized = dict(zip(sizes, size_settings(extras["upscale"]), strict=True))
        return sent_values({**recorded, **sized, tab.mode: "creative" if creative else "fast", **received})

    settings = [tab.upscaler, tab.scale, tab.target_width, tab.target_height, tab.mode, tab.creative_strength]
    restore_on_open(
        studio, tab.result_file, lambda path: path, settings + controls.received_outputs, restored
    )


def size_settings(upscale: str) -> tuple:
    """Scale, target width and target height that remake a recorded "64x48->256x192": one of the scales
    when it gives that size, else the exact size (None: as it is)."""
    try:
        before, after = ([int(side) for side in size.split("x")] for size in upscale.split("->"))
    except ValueError:
        return None, None, None
    for factor in SCALES:
        if after == [round(side * factor) for side in before]:
            return factor, 0, 0
    return None, *after
