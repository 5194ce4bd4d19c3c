"""The Live tab: the picture follows the prompt, the sliders and a sketch as they change, with no Generate
button. Keep saves the frame to the history; Enhance renders it properly as a grid in Text to Image.

Every change asks for a frame; while one is made, the page keeps only the newest change and sends it when
the frame is back, so the picture never lags behind a queue of old edits. API callers may send requests
at once (`/live`): each caller's newest is made and those it made stale are dropped
(studio/core/latest_only.py). The same settings and seed give the same frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from pipelines.live import LiveRequest, enhanced_live_values
from pipelines.parts.common import GeneratedImage, resolve_seed
from studio.core.presets import Presets
from studio.core.requests import parse_request
from studio.ui.common import INSTANT_EVENT, readable, session_of, slider, user_errors
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import IMAGE_FILE, Endpoint, Parameter, field, present
from studio.ui.i18n import say, say_phrases, tr
from studio.ui.runner import reported_on
from studio.ui.send_to import Sent
from studio.ui.widgets.aspect_ratio import aspect_ratio_box, aspect_ratio_parameter
from studio.ui.widgets.prompt_controls import model_box, prompt_box, styles_box

TAB = TabInfo("live", "Live")
LIVE_SIZES = {"auto": "Auto (half size on a CPU)", "half": "Half size", "full": "Full size"}
TYPE_A_PROMPT = "Type a prompt: the picture follows it as you type."
# Frames run beside each other (each visitor's one at a time: `Studio.live_turns`), outside the GPU queue.
FRAME_EVENT = {"concurrency_limit": None}
# The page sends its next change only once its frame is back, and of the changes made meanwhile only the
# last: sent all at once, they could reach the server out of order and leave an older prompt's frame last.
PAGE_FRAME_EVENT = {**FRAME_EVENT, "trigger_mode": "always_last"}


@dataclass
class LiveTab:
    prompt: gr.Textbox
    styles: gr.Dropdown
    model: gr.Dropdown
    aspect_ratio: gr.Dropdown
    guidance_scale: gr.Slider
    seed: gr.Number
    new_seed: gr.Button
    sketch: gr.Sketchpad
    sketch_image: gr.Image  # the sketch as a picture: what `/live` takes
    strength: gr.Slider
    live_size: gr.Radio
    frame: gr.Image
    status: gr.Markdown
    parameters: gr.JSON
    shown: gr.State  # the frame in view (a GeneratedImage), for Keep and Enhance
    keep: gr.Button
    enhance: gr.Button

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.frame, self.parameters, self.status, self.shown]


def create_tab(studio: Studio) -> LiveTab:
    tab = layout(studio)
    wire_frames(tab, *live_endpoints(studio, tab))
    wire_keep_and_enhance(studio, tab)
    return tab


def layout(studio: Studio) -> LiveTab:
    presets = studio.presets
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("live", "Type, and the picture follows…")
            styles = styles_box("live", presets)
            with gr.Row():
                info = "Live runs its one-step sibling: SDXS for SD 1.5, SDXL-Turbo for SDXL."
                model = model_box("live", presets, studio.default_model, info=info)
                aspect_ratio = aspect_ratio_box("live", presets, LiveRequest.default("aspect_ratio"))
            guidance_scale = slider(
                LiveRequest,
                "guidance_scale",
                step=0.5,
                value=0,
                maximum=10,
                label=tr("Guidance (CFG scale)"),
                info=tr("0 for one-step models; above 1, frames take twice as long"),
                elem_id="live-guidance",
            )
            with gr.Row():
                seed = gr.Number(
                    value=1,
                    precision=0,
                    minimum=0,
                    maximum=LiveRequest.bounds("seed")[1],
                    label=tr("Seed"),
                    info=tr("Kept from frame to frame, so a small edit makes a small change"),
                    elem_id="live-seed",
                )
                new_seed = gr.Button(tr("New seed"), scale=0, min_width=120, elem_id="live-new-seed")
            with gr.Accordion(tr("Sketch: the picture follows your drawing"), open=False):
                sketch = gr.Sketchpad(
                    type="pil",
                    image_mode="RGB",
                    canvas_size=(512, 512),
                    brush=gr.Brush(default_size=12),
                    height=360,
                    label=tr("Sketch"),
                    elem_id="live-sketch",
                )
                strength = slider(
                    LiveRequest,
                    "strength",
                    step=0.05,
                    label=tr("How far the picture may move from the sketch"),
                    elem_id="live-strength",
                )
            sketch_image = readable(
                gr.Image(type="pil", visible=False, elem_id="live-sketch-image"),
                studio.settings.max_image_side,
            )
            with gr.Accordion(tr("Advanced"), open=False):
                live_size = gr.Radio(
                    choices=[(tr(label), value) for value, label in LIVE_SIZES.items()],
                    value=LiveRequest.default("live_size"),
                    label=tr("Live size"),
                    info=tr("Smaller frames follow typing on a CPU; Enhance renders the full size"),
                    elem_id="live-size",
                )
        with gr.Column(scale=3, min_width=360):
            frame = gr.Image(
                type="pil",
                format="png",
                interactive=False,
                height=512,
                label=tr("Live"),
                buttons=["download", "fullscreen"],
                elem_id="live-frame",
            )
            status = gr.Markdown(tr(TYPE_A_PROMPT), elem_id="live-status")
            with gr.Row():
                keep = gr.Button(tr("Keep"), variant="primary", elem_id="live-keep")
                enhance = gr.Button(tr("Enhance in Text to Image"), elem_id="live-enhance")
            with gr.Accordion(tr("Frame parameters"), open=False):
                parameters = gr.JSON(label=tr("Parameters of the frame"), elem_id="live-parameters")
            shown = gr.State(None)
    return LiveTab(prompt, styles, model, aspect_ratio, guidance_scale, seed, new_seed, sketch, sketch_image,
                   strength, live_size, frame, status, parameters, shown, keep, enhance)  # fmt: skip


class LiveFrames:
    """Frames for the page and `/live`: each visitor's newest request made, the ones it made stale dropped."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.pipeline = studio.pipeline("live")

    def make(
        self, values: dict[str, Any], request: gr.Request | None, progress: gr.Progress
    ) -> tuple[GeneratedImage | None, str]:
        """The frame of `values` and what the status line says of it; no frame for a request a newer one
        replaced before its turn. A refused request raises `gr.Error`. The first frame of a model may
        download or convert it: that shows on the progress bar (a frame after it shows none)."""
        with self.studio.live_turns.turn(session_of(request)) as turn:
            if not turn.mine:
                return None, say("Replaced by a newer request before its turn: no frame.")
            started = time.perf_counter()
            with user_errors(), reported_on(progress):
                values, notes = self.pipeline.read_prompt_parameters(present(values))
                parsed = parse_request(LiveRequest, values)
                self.studio.runner.check_limits(parsed)
                frame = self.frame(parsed)
            took = time.perf_counter() - started
        return frame, frame_status(frame, self.studio.presets, took, turn.skipped, notes)

    def frame(self, request: LiveRequest) -> GeneratedImage:
        """On ZeroGPU, in the platform's GPU function, as every run there; with --ray, in a replica."""
        runner = self.studio.runner
        if runner.replicas is not None:
            return list(runner.replicas.generate("live", request))[0]
        return (
            self.pipeline.frame(request)
            if runner.gpu_runner is None
            else runner.gpu_runner("live", request)[0]
        )


def frame_status(frame: GeneratedImage, presets: Presets, took: float, skipped: int, notes: list[str]) -> str:
    """What the line under the picture says of a frame: its model, steps, size and time, the edits it
    made stale, and what the prompt asked that was not honoured."""
    p = frame.parameters
    model = presets.models[p.model].label if p.model in presets.models else Path(p.model or "").name
    steps = say(f"{p.steps} step" if p.steps == 1 else f"{p.steps} steps")
    text = f"{model} · {steps} · {p.width}×{p.height} · {took:.2f} s"
    if skipped:
        text += " · " + say(f"{skipped} stale edits skipped" if skipped > 1 else "1 stale edit skipped")
    if notes:
        text += "  \n⚠️ " + say_phrases(notes)
    return text


def sketched(value: dict | None) -> Image.Image | None:
    """The drawing on the sketch pad, or None while it is blank."""
    composite = (value or {}).get("composite")  # flattened on white
    if composite is None:
        return None
    darkest, lightest = composite.convert("L").getextrema()
    return None if darkest == lightest else composite.convert("RGB")


def live_endpoints(studio: Studio, tab: LiveTab) -> tuple[Endpoint, Endpoint]:
    """`/live` for API callers, and the same frames for the page."""
    frames = LiveFrames(studio)
    t = tab
    parameters = [
        field(LiveRequest, "prompt", t.prompt, "what to draw; --tile, <lora:x:0.8> and the like work."),
        field(LiveRequest, "styles", t.styles, "style preset names, stacked.", annotation=list[str] | None),
        field(LiveRequest, "model", t.model, "preset (Live runs its one-step sibling), folder or hub id."),
        aspect_ratio_parameter(LiveRequest, t.aspect_ratio),
        field(LiveRequest, "guidance_scale", t.guidance_scale, "0 for one-step models."),
        field(LiveRequest, "seed", t.seed, "the same settings and seed give the same frame."),
        Parameter("image", t.sketch_image, IMAGE_FILE, None, "a sketch the frame follows (optional)."),
        field(LiveRequest, "strength", t.strength, "how far the frame may move from the sketch."),
        field(LiveRequest, "live_size", t.live_size, "auto (half the model's side on a CPU), half or full."),
    ]  # fmt: skip

    def api(values: dict, request: gr.Request, progress: gr.Progress) -> tuple:
        frame, status = frames.make(values, request, progress)
        return (None, None, status) if frame is None else (frame.image, frame.parameters.to_dict(), status)

    def page(values: dict, request: gr.Request, progress: gr.Progress) -> tuple:
        """As `api`, for the tab: nothing changes for a dropped request, and a refusal (which comes while
        typing) is said quietly on the status line."""
        unchanged = gr.skip()
        if not str(values.get("prompt") or "").strip():
            return unchanged, unchanged, say(TYPE_A_PROMPT), unchanged
        try:
            frame, status = frames.make(values, request, progress)
        except gr.Error as error:
            return unchanged, unchanged, f"⚠️ {error.message}", unchanged
        if frame is None:
            return unchanged, unchanged, unchanged, unchanged
        return frame.image, frame.parameters.to_dict(), status, frame

    summary = (
        "One live frame: a one-step model at a live size, decoded fast. Of a caller's requests waiting, "
        "only the newest is made: an older one returns no frame (null). Returns the frame, its parameters "
        "and a status line."
    )
    return Endpoint("live", summary, parameters, api, streams=False), Endpoint(
        "live_frame", summary, parameters, page, streams=False
    )


def wire_frames(tab: LiveTab, api: Endpoint, page: Endpoint) -> None:
    """Each change makes a frame; `/live` is a hidden trigger's, for API callers; a drawing reaches the
    frame as a picture."""
    changes = [tab.prompt.input, tab.prompt.submit, tab.styles.change, tab.model.change,
               tab.aspect_ratio.change, tab.guidance_scale.input, tab.seed.input, tab.strength.release,
               tab.live_size.change, tab.sketch_image.change]  # fmt: skip
    # Progress (a first frame's download or conversion) shows on the status line; the picture stays in view.
    on_status = {"show_progress_on": [tab.status]}
    page_event = {**PAGE_FRAME_EVENT, **on_status}
    gr.on(changes, page.fn, page.inputs, tab.outputs, api_visibility="private", **page_event)
    api_trigger = gr.Button(visible=False, elem_id="live-api")
    api_trigger.click(api.fn, api.inputs, tab.outputs[:3], api_name=api.name, **FRAME_EVENT, **on_status)
    tab.sketch.change(sketched, tab.sketch, tab.sketch_image, **INSTANT_EVENT)

    def another_seed() -> int:
        return resolve_seed(-1)

    tab.new_seed.click(another_seed, None, tab.seed, **INSTANT_EVENT).then(
        page.fn, page.inputs, tab.outputs, api_visibility="private", **page_event
    )


def wire_keep_and_enhance(studio: Studio, tab: LiveTab) -> None:
    """Keep saves the frame in view, with every parameter, to the history; Enhance opens Text to Image with
    the frame's prompt, styles and seed on the chosen model (not its live sibling) and renders it there."""

    def keep(frame: GeneratedImage | None, request: gr.Request) -> str:
        if frame is None:
            raise gr.Error(say("There is no frame to keep yet: type a prompt first."), print_exception=False)
        with user_errors():
            path = studio.history.save(frame.image, frame.parameters, studio.viewer(request).owner)
        return say(f"Kept in the history as {path.name}.")

    tab.keep.click(keep, tab.shown, tab.status, **INSTANT_EVENT)

    def sent(frame: GeneratedImage | None, model: str | None) -> Sent:
        if frame is None:
            raise gr.Error(
                say("There is no frame to enhance yet: type a prompt first."), print_exception=False
            )
        with user_errors():
            return Sent(**enhanced_live_values(frame.parameters, studio.presets, model))

    studio.send_to.send(tab.enhance, "txt2img", [tab.shown, tab.model], sent, then="generate")
