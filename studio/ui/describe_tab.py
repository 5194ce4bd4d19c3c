"""The Describe tab (Midjourney's /describe): an image in, four prompt suggestions out; "Use this prompt"
opens Text to Image with it."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.describe import SUGGESTIONS, DescribeRequest
from studio.ui.common import GPU_EVENT, readable
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import IMAGE_FILE, REQUIRED, Endpoint, Parameter, field, present
from studio.ui.i18n import say, tr
from studio.ui.runner import Job
from studio.ui.send_to import Sent
from studio.ui.status_line import StatusLine

TAB = TabInfo("describe", "Describe")


@dataclass
class DescribeTab:
    image: gr.Image
    suggestions: list[gr.Textbox]


def create_tab(studio: Studio) -> DescribeTab:
    pipeline = studio.pipeline("describe")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            image = readable(
                gr.Image(
                    label=tr("Image to describe"),
                    type="pil",
                    sources=["upload", "clipboard"],
                    height=360,
                    elem_id="describe-image",
                ),
                studio.settings.max_image_side,
            )
            captioner = gr.Dropdown(
                choices=list(pipeline.presets.captioners),
                value=pipeline.presets.default_captioner,
                label=tr("Captioner"),
                allow_custom_value=True,
                elem_id="describe-captioner",
            )
            describe = gr.Button(tr("Describe"), variant="primary", elem_id="describe-run")
        with gr.Column(scale=3, min_width=360):
            status = StatusLine(elem_id="describe-status", elem_classes=["grid-status"])
            suggestions, uses = [], []
            for n in range(1, SUGGESTIONS + 1):
                with gr.Row(equal_height=True):
                    suggestions.append(
                        gr.Textbox(label=tr(f"Suggestion {n}"), scale=4, elem_id=f"describe-prompt-{n}")
                    )
                    uses.append(gr.Button(tr("Use this prompt"), scale=1, elem_id=f"describe-use-{n}"))

    def describe_image(values: dict, request: gr.Request, progress: gr.Progress):
        try:
            results = list(studio.runner.run(Job("describe", present(values)), request, progress))
        except gr.Error as error:  # the message stays on the status line when its toast has gone
            yield (*[gr.skip()] * SUGGESTIONS, f"⚠️ {error.message}")
            raise
        if not results:  # stopped: the suggestions shown stay
            yield (*[gr.skip()] * SUGGESTIONS, say("Stopped before the suggestions were written."))
            return
        typed = results[-1].typed()
        yield (*typed, *[""] * (SUGGESTIONS - len(typed)), "")

    endpoint = Endpoint(
        "describe",
        "Four prompt suggestions for an image, from a captioning model (Midjourney's /describe); each "
        "ends with the image's aspect ratio as --ar when it is not square.",
        [
            Parameter("image", image, IMAGE_FILE, REQUIRED, "the image to describe."),
            field(DescribeRequest, "captioner", captioner, "a captioner preset, or a local folder."),
        ],
        describe_image,
    )
    describe.click(
        endpoint.fn,
        endpoint.inputs,
        [*suggestions, status],
        api_name=endpoint.name,
        show_progress_on=[status],
        **GPU_EVENT,
    )

    def prompt_to_send(prompt: str) -> Sent | None:
        if not (prompt or "").strip():
            gr.Warning(say("Describe an image first: there is no prompt to use yet."))
            return None
        return Sent(prompt=prompt.strip())

    for suggestion, use in zip(suggestions, uses, strict=True):
        studio.send_to.send(use, "txt2img", [suggestion], prompt_to_send)
    return DescribeTab(image, suggestions)
