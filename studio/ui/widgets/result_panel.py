"""The result grid: runs a job, saves and shows each image as it is made (live previews between), says
how a run ended, and offers what the grid's buttons act on; a reopened link shows its grid again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from pipelines.diffusion import GeneratedImage
from pipelines.parts.previews import PreviewImage
from studio.core.errors import ResultNotSaved
from studio.core.metadata import GenerationParameters, read_parameters
from studio.ui.common import GPU_EVENT, INSTANT_EVENT, describe_parameters
from studio.ui.i18n import say, say_phrases, tr
from studio.ui.runner import Job
from studio.ui.send_to import Updates, gallery_path, selected_result
from studio.ui.status_line import StatusLine

if TYPE_CHECKING:  # the Studio is built from these widgets' module's neighbours
    from studio.ui.context import Studio


def status_warnings(not_saved: str | None, notes: list[str]) -> str:
    """A run's status line when it ends: its result could not be saved, and what its prompt asked that
    was not honoured; empty when neither."""
    said = [say(not_saved)] if not_saved else []
    if notes:
        said.append(say_phrases(notes))
    return " ".join(f"⚠️ {sentence}" for sentence in said)


class ResultPanel:
    """A result grid: each image saved to the history as it arrives and shown with its parameters; the
    run's job kept for Reroll (whose label says what it will run again); the first image selected when the
    run ends. Progress, refusals and Stop show on a status line under the grid, so the last grid stays in
    view whatever happens to the next run."""

    def __init__(self, prefix: str, studio: Studio, *, reroll: gr.Button | None = None) -> None:
        self.studio = studio
        self.reroll = reroll
        self.gallery = gr.Gallery(
            label=tr("Results"),
            format="png",
            columns=2,
            object_fit="contain",
            height=560,
            buttons=["download", "fullscreen"],
            interactive=False,
            elem_id=f"{prefix}-gallery",
        )
        self.status = StatusLine(elem_id=f"{prefix}-status", elem_classes=["grid-status"])
        self.selected_parameters = gr.Textbox(
            label=tr("Selected image"),
            lines=4,
            interactive=False,
            buttons=["copy"],
            placeholder=tr("Click an image to see how it was made."),
            elem_id=f"{prefix}-selected",
        )
        self.selected_index = gr.State(None)
        self.tiled = gr.Image(
            label=tr("Tiled 3×3: a seamless image shows no seams"),
            type="pil",
            format="png",
            interactive=False,
            visible=False,
            height=420,
            elem_id=f"{prefix}-tiled",
        )
        with gr.Accordion(tr("All parameters (JSON)"), open=False):
            self.parameters = gr.JSON(label=tr("Parameters of each image"), elem_id=f"{prefix}-parameters")
        self.job = gr.State(None)  # the last run's Job, for Reroll

        def show_selected(gallery_value: list | None, params: list[dict] | None, event: gr.SelectData):
            if not params or event.index is None or event.index >= len(params):
                return None, "", gr.Image(visible=False, value=None)
            return self.described(gallery_value, params, event.index)

        self.gallery.select(show_selected, [self.gallery, self.parameters], self._described, **INSTANT_EVENT)

    def restore_on_open(
        self, outputs: list[gr.components.Component], fill: Callable[[dict], Updates]
    ) -> None:
        """A page opened from a link shows its grid again; `outputs` get the settings of its first image."""

        def first_image(value: list | None) -> str | None:
            return gallery_path(value[0]) if value else None

        restore_on_open(self.studio, self.gallery, first_image, outputs, fill)

    @property
    def outputs(self) -> list[gr.components.Component]:
        """What every run of this grid updates (the Reroll button and the status line are not in the API)."""
        return [self.gallery, self.parameters, self.job, *([self.reroll] if self.reroll else []), self.status]

    @property
    def event_options(self) -> dict:
        """For every event that fills this grid: one GPU job at a time, progress on the status line."""
        return {**GPU_EVENT, "show_progress_on": [self.status]}

    def run(self, job: Job, request: gr.Request | None, progress: gr.Progress) -> Iterator[tuple]:
        """Run `job`: the outputs after each image is saved (as the visitor's, see `Studio.viewer`), and
        once at the end. A refusal or a failure is written on the status line and raised again (the API's
        error); what the grid showed stays."""
        owner = self.studio.viewer(request).owner
        notes: list[str] = []  # what the prompt asked that was not honoured: said here, not in a toast
        results: Iterator[GeneratedImage] = self.studio.runner.run(job, request, progress, notes=notes)
        saved: list[tuple[str | Image.Image, GenerationParameters]] = []  # a path, or the image unsaved
        not_saved: str | None = None

        def status() -> str:
            return status_warnings(not_saved, notes)

        def shown() -> tuple:
            values = [gallery_items(saved), [p.to_dict() for _, p in saved], job]
            if self.reroll:
                values.append(gr.Button(value=say(f"Reroll ({job.action})" if job.action else "Reroll")))
            return (*values, status())

        def previewing(preview: PreviewImage) -> tuple:
            caption = f"#{len(saved) + 1} · " + say(f"step {preview.step} of {preview.steps}")
            gallery = [*gallery_items(saved), (preview.image, caption)]
            unchanged = [gr.skip()] * (len(self.outputs) - 3)
            return (gallery, [p.to_dict() for _, p in saved], *unchanged, status())

        def unchanged(status: str) -> tuple:
            return (*[gr.skip()] * (len(self.outputs) - 1), status)

        try:
            for result in results:
                if isinstance(result, PreviewImage):  # shown in the grid only: never saved or answered
                    yield previewing(result)
                    continue
                try:
                    path = self.studio.history.save(result.image, result.parameters, owner, result.png_chunks)
                    saved.append((str(path), result.parameters))
                except ResultNotSaved as error:  # shown all the same, from memory; said once a run
                    if not_saved is None:
                        not_saved = str(error)
                        gr.Warning(say(not_saved))
                    saved.append((result.image, result.parameters))
                yield shown()
        except gr.Error as error:
            yield unchanged(f"⚠️ {error.message}")
            raise
        yield shown() if saved else unchanged(say("Stopped before the first image was finished."))

    def connect(self, events: list, stop: gr.Button) -> None:
        """Reroll runs the last job again with a new seed; Stop ends every run of this grid and says how far
        it got; each run ends with its first image selected."""
        if self.reroll is not None:

            def reroll_last(job: Job | None, request: gr.Request, progress=gr.Progress()):
                if not job:
                    raise gr.Error(say("Nothing to reroll yet: make a grid first."), print_exception=False)
                yield from self.run(job.rerolled(), request, progress)

            reroll = self.reroll.click(
                reroll_last, [self.job], self.outputs, api_visibility="private", **self.event_options
            )
            events = [*events, reroll]

        for event in events:
            self.select_first_after(event)
        self.studio.runner.stop_button(stop, events, self.status, grid=(self.gallery, self.parameters))

    def select_first_after(self, event: Any) -> None:
        """When `event` (a run of this grid) ends, its first image is selected and described."""

        def show_first(gallery_value: list | None, params: list[dict] | None):
            if not params:
                return None, "", gr.skip()
            return self.described(gallery_value, params, 0)

        event.then(show_first, [self.gallery, self.parameters], self._described, **INSTANT_EVENT)

    @property
    def _described(self) -> list[gr.components.Component]:
        return [self.selected_index, self.selected_parameters, self.tiled]

    def described(self, gallery_value: list | None, params: list[dict], index: int) -> tuple:
        """The selected image's index and parameters, and for a seamless one, itself tiled 3×3."""
        if not params[index].get("extras", {}).get("tile") or not gallery_value:
            return index, describe_parameters(params[index]), gr.Image(visible=False, value=None)
        path, _ = selected_result(gallery_value, params, index)
        return index, describe_parameters(params[index]), gr.Image(visible=True, value=tiled_3x3(path))

    @property
    def selection(self) -> list[gr.components.Component]:
        """The inputs `selected_result` takes."""
        return [self.gallery, self.parameters, self.selected_index]


def restore_on_open(
    studio: Studio,
    shown: gr.components.Component,
    result_file: Callable[[Any], str | None],
    outputs: list[gr.components.Component],
    fill: Callable[[dict], Updates],
) -> None:
    """A page opened from a link shows its results again (Gradio's deep links keep what events set, not
    what was typed); `fill(parameters)` gives `outputs` the settings recorded in `result_file(shown's
    value)`. A fresh page shows no result: the state stays unchanged and nothing fires, so nothing typed
    meanwhile is overwritten (no control is rebuilt)."""

    def recorded_settings(value: Any) -> Any:
        path = result_file(value)
        recorded = read_parameters(path) if path else None
        if recorded is None:
            return gr.skip()
        return recorded.to_dict() if isinstance(recorded, GenerationParameters) else recorded

    def filled(values: dict | None) -> Updates:
        return (fill(values) if values else None) or gr.skip()  # Gradio reads {} as one output's value

    settings = gr.State(None)
    studio.when_loaded(recorded_settings, [shown], [settings])
    settings.change(filled, [settings], outputs, **INSTANT_EVENT)


def gallery_items(
    results: list[tuple[str | Image.Image, GenerationParameters]],
) -> list[tuple[str | Image.Image, str]]:
    return [
        (path, f"#{i + 1}" + ("" if params.seed is None else f" · seed {params.seed}"))
        for i, (path, params) in enumerate(results)
    ]


def tiled_3x3(path: str, longest: int = 1536) -> Image.Image:
    """The image repeated three by three (at most `longest` pixels a side), where a seam would show."""
    with Image.open(path) as image:
        tile = image.convert("RGB")
    scale = min(1.0, longest / (3 * max(tile.size)))
    if scale < 1:
        tile = tile.resize((max(1, round(tile.width * scale)), max(1, round(tile.height * scale))))
    grid = Image.new("RGB", (tile.width * 3, tile.height * 3))
    for row in range(3):
        for column in range(3):
            grid.paste(tile, (column * tile.width, row * tile.height))
    return grid
