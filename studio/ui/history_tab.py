"""The History tab: every result ever saved, newest first, in pages of thumbnails; search and filters.

Each visitor sees their own (`Studio.viewer`). Selecting a result shows it with its parameters and offers
Send to every tab, Vary and Upscale (run in their tabs), Use seed, and Delete, which moves the file to the
trash; Show trash lists it again with Restore, and only Empty trash, confirmed, destroys anything. The tab
lists afresh whenever it is opened; Refresh also brings the index up to date with files other processes
wrote (or rebuilds it, with its progress).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import gradio as gr
from pydantic import Field

from studio.core.history import StoppedRun
from studio.core.history_index import TRASH, Entry, Page, Query, Viewer
from studio.core.metadata import GenerationParameters
from studio.core.peer_metadata import describe_peer_parameters
from studio.core.requests import Request, parse_request
from studio.ui.common import INSTANT_EVENT, user_errors
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import Endpoint, field
from studio.ui.i18n import say, tr
from studio.ui.send_to import Sent
from studio.ui.status_line import StatusLine

TAB = TabInfo("history", "History")
PER_PAGE = 48
ANY = ""  # the filters' "no filter" choice
FILTER_LABELS = {"task": "Any task", "model": "Any model", "day": "Any day", "size": "Any size"}
LISTING = {"api_visibility": "private", "concurrency_limit": None}  # cheap: never behind a GPU job


class HistoryRequest(Request):
    """What to list: words to find in the prompts, filters, and which page."""

    text: str = Field("", max_length=500)
    task: str = ""
    model: str = ""
    day: str = Field("", pattern=r"^(\d{4}-\d{2}-\d{2})?$")
    size: str = Field("", pattern=r"^(\d+x\d+)?$")
    trashed: bool = False
    page: int = Field(1, ge=1, le=100_000)


@dataclass
class HistoryLayout:
    """The tab's components, as `layout` places them."""

    text: gr.Textbox
    filters: dict[str, gr.Dropdown]  # by FILTER_LABELS' names
    trashed: gr.Checkbox
    refresh: gr.Button
    stopped: gr.Markdown  # runs a closed page left unfinished
    gallery: gr.Gallery
    newer: gr.Button
    page_line: gr.Markdown
    older: gr.Button
    page: gr.Number
    listed: gr.State  # the paths shown, in order
    selected: gr.State  # the selected result's path
    image: gr.Image
    described: gr.Textbox
    fields: gr.JSON
    send: dict[str, gr.Button]  # by target tab
    vary: dict[str, gr.Button]  # by variation
    upscale: gr.Button
    use_seed: gr.Button
    delete: gr.Button
    restore: gr.Button
    empty: gr.Button
    confirm: gr.Button
    note: StatusLine
    page_data: gr.JSON

    @property
    def request_inputs(self) -> list[gr.components.Component]:
        """HistoryRequest's fields, in order."""
        return [self.text, *self.filters.values(), self.trashed, self.page]

    @property
    def page_outputs(self) -> list[gr.components.Component]:
        """What a listing fills, then the filters' choices."""
        shown = [self.stopped, self.gallery, self.page_line, self.page, self.listed, self.page_data]
        return [*shown, *self.filters.values()]

    @property
    def selection(self) -> list[gr.components.Component]:
        return [self.selected, self.image, self.described, self.fields, self.note]


def create_tab(studio: Studio) -> None:
    shown = layout(studio)
    lister = Lister(studio, shown)
    lister.wire()
    wire_selection(studio, shown)
    wire_trash(studio, shown, lister)


def layout(studio: Studio) -> HistoryLayout:
    with gr.Row(equal_height=True):
        text = gr.Textbox(
            value=HistoryRequest.default("text"),
            label=tr("Search the prompts"),
            placeholder=tr("fox snow"),
            scale=3,
            elem_id="history-search",
        )
        filters = {
            name: gr.Dropdown(
                [(label, ANY)],
                value=ANY,
                label=tr(name.capitalize()),
                scale=2 if name == "model" else 1,
                elem_id=f"history-{name}",
            )  # fmt: skip
            for name, label in FILTER_LABELS.items()
        }
        with gr.Column(scale=1, min_width=120):
            trashed = gr.Checkbox(value=False, label=tr("Show trash"), elem_id="history-trashed")
            refresh = gr.Button(tr("Refresh"), size="sm", elem_id="history-refresh")
    stopped = gr.Markdown(elem_id="history-stopped")
    gallery = gr.Gallery(
        label=tr("Results, newest first"),
        columns=8,
        height=460,
        allow_preview=False,
        object_fit="cover",
        interactive=False,
        elem_id="history-gallery",
    )
    with gr.Row():
        newer = gr.Button(tr("◀ Newer"), size="sm", scale=0, min_width=110, elem_id="history-previous")
        page_line = gr.Markdown(elem_id="history-page")
        older = gr.Button(tr("Older ▶"), size="sm", scale=0, min_width=110, elem_id="history-next")
    page = gr.Number(value=HistoryRequest.default("page"), precision=0, visible=False)
    listed, selected = gr.State([]), gr.State(None)
    with gr.Row(equal_height=False):
        image = gr.Image(
            label=tr("Selected"), type="filepath", interactive=False, height=360, elem_id="history-image"
        )
        with gr.Column():
            described = gr.Textbox(
                label=tr("Parameters"), lines=5, interactive=False, elem_id="history-parameters"
            )
            with gr.Accordion(tr("As fields"), open=False):
                fields = gr.JSON(elem_id="history-fields")
            with gr.Row(elem_classes=["grid-actions"]):
                targets = {"txt2img": "Text to Image", **studio.send_to.image_targets}
                send = {
                    target: gr.Button(tr(f"Send to {label}"), size="sm", elem_id=f"history-send-{target}")
                    for target, label in targets.items()
                }
            with gr.Row(elem_classes=["grid-actions"]):
                vary = {
                    name: gr.Button(tr(f"Vary ({name})"), size="sm", elem_id=f"history-vary-{name.lower()}")
                    for name in studio.presets.variations
                }
                upscale = gr.Button(tr("Upscale"), size="sm", elem_id="history-upscale")
                use_seed = gr.Button(tr("Use seed"), size="sm", elem_id="history-use-seed")
            with gr.Row(elem_classes=["grid-actions"]):
                delete = gr.Button(tr("Delete"), size="sm", variant="stop", elem_id="history-delete")
                restore = gr.Button(tr("Restore"), size="sm", visible=False, elem_id="history-restore")
                empty = gr.Button(tr("Empty trash…"), size="sm", visible=False, elem_id="history-empty")
                confirm = gr.Button(
                    tr("Destroy them"), size="sm", variant="stop", visible=False, elem_id="history-confirm"
                )
            note = StatusLine(elem_id="history-note")
    with gr.Accordion(tr("This page as data"), open=False):
        page_data = gr.JSON(elem_id="history-page-data")
    return HistoryLayout(
        text, filters, trashed, refresh, stopped, gallery, newer, page_line, older, page, listed, selected,
        image, described, fields, send, vary, upscale, use_seed, delete, restore, empty, confirm, note,
        page_data,
    )  # fmt: skip


class Lister:
    """Lists a page of results: the /history endpoint, the tab's filters and paging, Refresh."""

    def __init__(self, studio: Studio, shown: HistoryLayout) -> None:
        self.studio, self.shown = studio, shown
        self.synced = False  # the index is brought up to date once per process, then on Refresh
        self.endpoint = Endpoint(
            "history",
            "List saved results, newest first, each with every word of `text` in its prompts and passing "
            "the filters. Returns the page's thumbnails, which page of how many, and the page as data "
            "(with the latest runs a closed page left unfinished).",
            [
                field(
                    HistoryRequest, "text", shown.text, "words that must all appear in the prompt (any case)."
                ),
                field(
                    HistoryRequest,
                    "task",
                    shown.filters["task"],
                    'a task, e.g. "txt2img", "img2img", "upscale"; "" for any.',
                ),
                field(HistoryRequest, "model", shown.filters["model"], 'a model as recorded; "" for any.'),
                field(HistoryRequest, "day", shown.filters["day"], 'a day, "YYYY-MM-DD"; "" for any.'),
                field(HistoryRequest, "size", shown.filters["size"], 'a size, "WIDTHxHEIGHT"; "" for any.'),
                field(HistoryRequest, "trashed", shown.trashed, "true lists the trash instead."),
                field(HistoryRequest, "page", shown.page, f"which page, from 1 ({PER_PAGE} results a page)."),
            ],  # fmt: skip
            lambda values, request, progress: [self.listing(values, request, progress)[i] for i in (1, 2, 5)],
            streams=False,
        )

    def listing(self, values: dict[str, Any], request: gr.Request, progress: gr.Progress) -> tuple:
        """What `HistoryLayout.page_outputs` show for the page `values` ask for."""
        history = self.studio.history
        with user_errors():
            checked = parse_request(HistoryRequest, {**values, "page": int(values.get("page") or 1)})
            if not self.synced:  # files other processes wrote since the last start; a rebuild, if it was lost
                history.index.sync(
                    lambda done, total: progress((done, total), desc=say("Reading the results"))
                )
                self.synced = True
            viewer = self.studio.viewer(request)
            found = history.index.search(Query(**checked.model_dump(), per_page=PER_PAGE), viewer)
            offered = history.index.choices(viewer)
        choices = tuple(
            gr.Dropdown(choices=[(label, ANY), *offered[name]], value=values.get(name) or ANY)
            for name, label in FILTER_LABELS.items()
        )
        stopped = history.stopped_runs(viewer)
        items = [(str(history.thumbnail(e.path, trashed=e.trashed)), caption(e)) for e in found.entries]
        data = {"total": found.total, "page": found.page, "pages": found.pages}
        data["results"] = [summary(entry) for entry in found.entries]
        data["stopped_runs"] = [asdict(run) for run in stopped]
        paths = [e.path for e in found.entries]
        return stopped_lines(stopped), items, page_line(found), found.page, paths, data, *choices

    def lists(self, turn: Callable[[int], int]) -> Callable:
        """An event function listing the page `turn(current page)`, from the endpoint's inputs."""

        def fn(text, task, model, day, size, trashed, page, request: gr.Request, progress=gr.Progress()):
            values = {
                "text": text,
                "task": task,
                "model": model,
                "day": day,
                "size": size,
                "trashed": trashed,
            }
            return self.listing({**values, "page": turn(int(page or 1))}, request, progress)

        return fn

    def wire(self) -> None:
        shown, endpoint = self.shown, self.endpoint
        gr.Button(visible=False).click(  # /history: the listing alone
            endpoint.fn,
            endpoint.inputs,
            [shown.gallery, shown.page_line, shown.page_data],
            api_name=endpoint.name,
            concurrency_limit=None,
        )

        def on(triggers: list, turn: Callable[[int], int]) -> None:
            gr.on(triggers, self.lists(turn), endpoint.inputs, shown.page_outputs, **LISTING)

        typed = [shown.text.submit, shown.trashed.change, *(f.input for f in shown.filters.values())]
        on([*typed, self.studio.tab_blocks[TAB.id].select], lambda current: 1)
        on([shown.newer.click], lambda current: max(1, current - 1))
        on([shown.older.click], lambda current: current + 1)

        def resync() -> None:
            self.synced = False

        shown.refresh.click(resync, None, None, **INSTANT_EVENT).then(
            self.lists(lambda current: current), endpoint.inputs, shown.page_outputs, **LISTING
        )


def page_line(found: Page) -> str:
    if not found.total:
        return say("Nothing here yet.")
    counted = say(f"{found.total} result" if found.total == 1 else f"{found.total} results")
    return say(f"Page {found.page} of {found.pages}") + f" · {counted}"


def stopped_lines(stopped: list[StoppedRun]) -> str:
    """The runs a closed page left unfinished, a line each, so their visitor knows what was not made."""
    lines = []
    for run in stopped:
        about = f"{run.task} “{shortened(run.prompt)}”" if run.prompt.strip() else run.task
        when, made, total = run.when[11:16], run.made, run.total
        said = say(f"{when} · {about}: stopped when its page was closed, after {made} of {total}.")
        lines.append(f"- ⏹ {said}")
    return "\n".join(lines)


def entry_of(studio: Studio, path: str | None, request: gr.Request | None, *, vetted: bool = False) -> Entry:
    viewer = Viewer() if vetted else studio.viewer(request)
    found = studio.history.index.entry(path, viewer) if path else None
    if found is None:
        raise gr.Error(say("Pick a result in the gallery first."), print_exception=False)
    return found


def file_of(studio: Studio, found: Entry) -> str:
    return str(studio.history.outputs / (f"{TRASH}/{found.path}" if found.trashed else found.path))


def wire_selection(studio: Studio, shown: HistoryLayout) -> None:
    """Selecting a result shows it; its buttons send it to the other tabs; /history_item shows one."""

    def select(paths: list[str], event: gr.SelectData, request: gr.Request):
        if event.index is None or event.index >= len(paths):
            return None, None, "", {}
        found = entry_of(studio, paths[event.index], request)
        return found.path, file_of(studio, found), describe(found), found.parameters

    shown_result = [shown.image, shown.described, shown.fields]
    shown.gallery.select(select, [shown.listed], [shown.selected, *shown_result], **INSTANT_EVENT)

    def history_item(file: str, request: gr.Request):
        """One saved result: its image, its parameters as text, and as fields.

        Args:
            file: the result as /history lists it, e.g. "2026-12-01/00012-txt2img-42.png".
        """
        found = entry_of(studio, file, request)
        return file_of(studio, found), describe(found), found.parameters

    item_path = gr.Textbox(visible=False)
    gr.Button(visible=False).click(
        history_item, [item_path], shown_result, api_name="history_item", concurrency_limit=None
    )

    def sent_of(path: str | None, **changes: Any) -> Sent:
        # `selected` is session state only `select` sets, after checking who may see the result.
        found = entry_of(studio, path, None, vetted=True)
        return replace(Sent.of(file_of(studio, found), found.parameters), **changes)

    def with_variation(name: str):
        return lambda path: sent_of(path, variation=name)

    def seed_of(path: str | None) -> Sent:
        seed = entry_of(studio, path, None, vetted=True).seed
        if seed is None:
            raise gr.Error(say("This result has no seed: nothing denoised it."), print_exception=False)
        return Sent(seed=seed)

    send_to = studio.send_to
    for target, button in shown.send.items():
        send_to.send(button, target, [shown.selected], sent_of)
    for name, button in shown.vary.items():
        send_to.send(button, "img2img", [shown.selected], with_variation(name), then="vary")
    send_to.send(shown.upscale, "upscale", [shown.selected], sent_of, then="upscale")
    send_to.send(shown.use_seed, "txt2img", [shown.selected], seed_of)


def wire_trash(studio: Studio, shown: HistoryLayout, lister: Lister) -> None:
    """Delete moves the selected result to the trash; Show trash lists it with Restore; Empty trash,
    confirmed, destroys what it holds."""
    history = studio.history

    def trash_controls(showing: bool):
        return (gr.Button(visible=not showing), gr.Button(visible=showing), gr.Button(visible=showing),
                gr.Button(visible=False))  # fmt: skip

    trash_buttons = [shown.delete, shown.restore, shown.empty, shown.confirm]
    shown.trashed.change(trash_controls, [shown.trashed], trash_buttons, **INSTANT_EVENT)

    def mover(action: Callable[[str], None], done: str):
        """Delete (to the trash) or Restore the selected result, then list the page again."""
        again = lister.lists(lambda current: current)

        def moved(
            path, text, task, model, day, size, trashed, page, request: gr.Request, progress=gr.Progress()
        ):
            with user_errors():
                action(entry_of(studio, path, request).path)
            listed = again(text, task, model, day, size, trashed, page, request, progress)
            return *listed, None, None, "", {}, done

        return moved

    for button, action, done in (
        (shown.delete, history.trash, "Moved to the trash: Show trash lists it, with Restore."),
        (shown.restore, history.restore, "Restored."),
    ):
        inputs = [shown.selected, *lister.endpoint.inputs]
        button.click(mover(action, done), inputs, shown.page_outputs + shown.selection, **LISTING)

    shown.empty.click(lambda: gr.Button(visible=True), None, [shown.confirm], **INSTANT_EVENT)

    def destroy(request: gr.Request):
        removed = history.empty_trash(studio.viewer(request))
        if removed == 1:
            return gr.Button(visible=False), say("Destroyed 1 result from the trash.")
        return gr.Button(visible=False), say(f"Destroyed {removed} results from the trash.")

    shown.confirm.click(destroy, None, [shown.confirm, shown.note], **INSTANT_EVENT).then(
        lister.lists(lambda current: 1), lister.endpoint.inputs, shown.page_outputs, **LISTING
    )


def caption(entry: Entry) -> str:
    return shortened(entry.prompt.strip() or entry.task)


def shortened(words: str, most: int = 40) -> str:
    words = words.strip()
    return words if len(words) <= most else words[: most - 1] + "…"


def summary(entry: Entry) -> dict[str, Any]:
    """What /history says of each result: everything but its full parameters (/history_item has them).
    Its path is called "file": gradio_client downloads any dict with a "path" as if it were a file."""
    said = {name: value for name, value in vars(entry).items() if name not in ("parameters", "path")}
    return {"file": entry.path, **said}


def describe(entry: Entry) -> str:
    if "task" in entry.parameters:
        return GenerationParameters.from_dict(entry.parameters).to_text()
    if entry.parameters:
        return describe_peer_parameters(entry.parameters)
    return "This file carries no generation parameters."
