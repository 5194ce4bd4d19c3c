"""The History tab: every result ever saved, newest first, in pages of thumbnails; search and filters.

Each visitor sees their own (`Studio.viewer`). Selecting a result shows it with its parameters and offers
Send to every tab, Vary and Upscale (run in their tabs), Use seed, and Delete, which moves the file to the
trash; Show trash lists it again with Restore, and only Empty trash, confirmed, destroys anything. The tab
lists afresh whenever it is opened; Refresh also brings the index up to date with files other processes
wrote (or rebuilds it, with its progress).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gradio as gr
from pydantic import Field

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


def create_tab(studio: Studio) -> None:
    history = studio.history
    synced: list[bool] = []  # the index is brought up to date once per process, then on Refresh

    with gr.Row(equal_height=True):
        text = gr.Textbox(
            value=HistoryRequest.default("text"),
            label=tr("Search the prompts"),
            placeholder=tr("fox snow"),
            scale=3,
            elem_id="history-search",
        )
        task, model, day, size = (
            gr.Dropdown(
                [(label, ANY)],
                value=ANY,
                label=tr(name.capitalize()),
                scale=2 if name == "model" else 1,
                elem_id=f"history-{name}",
            )  # fmt: skip
            for name, label in FILTER_LABELS.items()
        )
        with gr.Column(scale=1, min_width=120):
            trashed = gr.Checkbox(value=False, label=tr("Show trash"), elem_id="history-trashed")
            refresh = gr.Button(tr("Refresh"), size="sm", elem_id="history-refresh")
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
    listed = gr.State([])  # the paths shown, in order
    selected = gr.State(None)  # the selected result's path
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

    # -- listing -------------------------------------------------------------------------------------------

    def listing(values: dict[str, Any], request: gr.Request, progress: gr.Progress) -> tuple:
        """The page's thumbnails, its line, number, paths and data, then the filters' choices."""
        with user_errors():
            checked = parse_request(HistoryRequest, {**values, "page": int(values.get("page") or 1)})
            if not synced:  # files other processes wrote since the last start; a rebuild, if it was lost
                history.index.sync(
                    lambda done, total: progress((done, total), desc=say("Reading the results"))
                )
                synced.append(True)
            viewer = studio.viewer(request)
            found = history.index.search(Query(**checked.model_dump(), per_page=PER_PAGE), viewer)
            offered = history.index.choices(viewer)
        choices = tuple(
            gr.Dropdown(choices=[(label, ANY), *offered[name]], value=values.get(name) or ANY)
            for name, label in FILTER_LABELS.items()
        )
        return (*page_of(found), *choices)

    def page_of(found: Page) -> tuple:
        items = [(str(history.thumbnail(e.path, trashed=e.trashed)), caption(e)) for e in found.entries]
        if found.total:
            counted = say(f"{found.total} result" if found.total == 1 else f"{found.total} results")
            line = say(f"Page {found.page} of {found.pages}") + f" · {counted}"
        else:
            line = say("Nothing here yet.")
        data = {"total": found.total, "page": found.page, "pages": found.pages}
        data["results"] = [summary(entry) for entry in found.entries]
        return items, line, found.page, [e.path for e in found.entries], data

    endpoint = Endpoint(
        "history",
        "List saved results, newest first, each with every word of `text` in its prompts and passing the "
        "filters. Returns the page's thumbnails, which page of how many, and the page as data.",
        [
            field(HistoryRequest, "text", text, "words that must all appear in the prompt (any case)."),
            field(HistoryRequest, "task", task, 'a task, e.g. "txt2img", "img2img", "upscale"; "" for any.'),
            field(HistoryRequest, "model", model, 'a model as recorded; "" for any.'),
            field(HistoryRequest, "day", day, 'a day, "YYYY-MM-DD"; "" for any.'),
            field(HistoryRequest, "size", size, 'a size, "WIDTHxHEIGHT"; "" for any.'),
            field(HistoryRequest, "trashed", trashed, "true lists the trash instead."),
            field(HistoryRequest, "page", page, f"which page, from 1 ({PER_PAGE} results a page)."),
        ],
        lambda values, request, progress: [listing(values, request, progress)[i] for i in (0, 1, 4)],
        streams=False,
    )
    page_outputs = [gallery, page_line, page, listed, page_data]
    filters = [task, model, day, size]
    gr.Button(visible=False).click(  # /history: the listing alone
        endpoint.fn,
        endpoint.inputs,
        [gallery, page_line, page_data],
        api_name=endpoint.name,
        concurrency_limit=None,
    )

    def lists(turn):
        """An event function listing the page `turn(current page)` (its inputs: the endpoint's)."""

        def fn(text, task, model, day, size, trashed, page, request: gr.Request, progress=gr.Progress()):
            values = {
                "text": text,
                "task": task,
                "model": model,
                "day": day,
                "size": size,
                "trashed": trashed,
            }
            return listing({**values, "page": turn(int(page or 1))}, request, progress)

        return fn

    def on(triggers: list, turn) -> None:
        gr.on(triggers, lists(turn), endpoint.inputs, page_outputs + filters, **LISTING)

    on(
        [text.submit, trashed.change, *(f.input for f in filters), studio.tab_blocks[TAB.id].select],
        lambda p: 1,
    )
    on([newer.click], lambda current: max(1, current - 1))
    on([older.click], lambda current: current + 1)
    refresh.click(synced.clear, None, None, **INSTANT_EVENT).then(
        lists(lambda current: current), endpoint.inputs, page_outputs + filters, **LISTING
    )

    # -- one result ---------------------------------------------------------------------------------------

    def entry_of(path: str | None, request: gr.Request | None, *, vetted: bool = False) -> Entry:
        viewer = Viewer() if vetted else studio.viewer(request)
        found = history.index.entry(path, viewer) if path else None
        if found is None:
            raise gr.Error(say("Pick a result in the gallery first."), print_exception=False)
        return found

    def file_of(found: Entry) -> str:
        return str(history.outputs / (f"{TRASH}/{found.path}" if found.trashed else found.path))

    def select(paths: list[str], event: gr.SelectData, request: gr.Request):
        if event.index is None or event.index >= len(paths):
            return None, None, "", {}
        found = entry_of(paths[event.index], request)
        return found.path, file_of(found), describe(found), found.parameters

    gallery.select(select, [listed], [selected, image, described, fields], **INSTANT_EVENT)

    def history_item(file: str, request: gr.Request):
        """One saved result: its image, its parameters as text, and as fields.

        Args:
            file: the result as /history lists it, e.g. "2026-12-01/00012-txt2img-42.png".
        """
        found = entry_of(file, request)
        return file_of(found), describe(found), found.parameters

    item_path = gr.Textbox(visible=False)
    gr.Button(visible=False).click(
        history_item, [item_path], [image, described, fields], api_name="history_item", concurrency_limit=None
    )

    def sent_of(path: str | None, **changes: Any) -> Sent:
        # `selected` is session state only `select` sets, after checking who may see the result.
        found = entry_of(path, None, vetted=True)
        return replace(Sent.of(file_of(found), found.parameters), **changes)

    def with_variation(name: str):
        return lambda path: sent_of(path, variation=name)

    def seed_of(path: str | None) -> Sent:
        sent = sent_of(path)
        if sent.seed is None:
            raise gr.Error(say("This result has no seed: nothing denoised it."), print_exception=False)
        return replace(sent, seed_only=True)

    for target, button in send.items():
        studio.send_to.send(button, target, [selected], sent_of)
    for name, button in vary.items():
        studio.send_to.send(button, "img2img", [selected], with_variation(name), then="vary")
    studio.send_to.send(upscale, "upscale", [selected], sent_of, then="upscale")
    studio.send_to.send(use_seed, "txt2img", [selected], seed_of)

    # -- the trash -------------------------------------------------------------------------------------------

    def trash_controls(showing: bool):
        return (gr.Button(visible=not showing), gr.Button(visible=showing), gr.Button(visible=showing),
                gr.Button(visible=False))  # fmt: skip

    trashed.change(trash_controls, [trashed], [delete, restore, empty, confirm], **INSTANT_EVENT)

    def mover(action, done: str):
        """Delete (to the trash) or Restore the selected result, then list the page again."""
        again = lists(lambda current: current)

        def moved(
            path, text, task, model, day, size, trashed, page, request: gr.Request, progress=gr.Progress()
        ):
            with user_errors():
                action(entry_of(path, request).path)
            return (
                *again(text, task, model, day, size, trashed, page, request, progress),
                None,
                None,
                "",
                {},
                done,
            )

        return moved

    selection = [selected, image, described, fields, note]
    for button, action, done in (
        (delete, history.trash, "Moved to the trash: Show trash lists it, with Restore."),
        (restore, history.restore, "Restored."),
    ):
        button.click(mover(action, done), [selected, *endpoint.inputs], page_outputs + filters + selection,
                     **LISTING)  # fmt: skip

    empty.click(lambda: gr.Button(visible=True), None, [confirm], **INSTANT_EVENT)

    def destroy(request: gr.Request):
        removed = history.empty_trash(studio.viewer(request))
        return gr.Button(
            visible=False
        ), f"Destroyed {removed} result{'s' if removed != 1 else ''} from the trash."

    confirm.click(destroy, None, [confirm, note], **INSTANT_EVENT).then(
        lists(lambda current: 1), endpoint.inputs, page_outputs + filters, **LISTING
    )


def caption(entry: Entry) -> str:
    words = entry.prompt.strip() or entry.task
    return words if len(words) <= 40 else words[:39] + "…"


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
