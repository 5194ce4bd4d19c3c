"""A tab that answers with text, as a new tab would be added: a pipeline, a tab module, one entry in TABS.

It exists to show (tests/api/test_new_tab_api.py) that the runner, the endpoints and app.py take a tab
whose results are not images without any change to them.
"""

from collections.abc import Iterator

import gradio as gr
from pydantic import Field

from pipelines.parts.common import IsCancelled, Progress, never_cancelled, no_progress
from pipelines.parts.previews import PreviewSink, no_preview
from pipelines.task import Task
from studio.core.errors import RunCancelled
from studio.core.requests import Request
from studio.ui.common import GPU_EVENT
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import Endpoint, field, present
from studio.ui.runner import Job


class ShoutRequest(Request):
    text: str = Field("", min_length=1, max_length=40)
    times: int = Field(1, ge=1, le=3)


class ShoutPipeline(Task):  # the pipeline module's part: no Gradio
    task = "shout"
    request_type = ShoutRequest
    progress_label = "Shouting"

    def generate(
        self,
        request: ShoutRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
        preview: PreviewSink = no_preview,
    ) -> Iterator[str]:
        for time in range(request.times):
            if is_cancelled():
                raise RunCancelled()
            progress(time + 1, request.times)
            yield request.text.upper()


TAB = TabInfo("shout", "Shout")


def create_tab(studio: Studio) -> None:  # the tab module's part
    studio.pipeline("shout", ShoutPipeline)
    text = gr.Textbox(value=ShoutRequest.default("text"), label="Text")
    times = gr.Slider(1, 3, step=1, value=ShoutRequest.default("times"), label="Times")
    answer = gr.Textbox(label="Answer")
    button = gr.Button("Shout")

    def shout(values, request, progress):
        return " ".join(studio.runner.run(Job("shout", present(values)), request, progress))

    endpoint = Endpoint(
        "shout",
        "Say it louder. Returns the text in capitals, as many times as asked.",
        [
            field(ShoutRequest, "text", text, "what to say."),
            field(ShoutRequest, "times", times, "how many times."),
        ],
        shout,
        streams=False,
    )
    button.click(endpoint.fn, endpoint.inputs, [answer], api_name=endpoint.name, **GPU_EVENT)
