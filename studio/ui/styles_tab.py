"""The Styles tab: moodboards (a named set of images saved as one style code) and the saved style codes,
each usable as `--sref CODE` in Text to Image."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from pipelines.style_code import MAX_MOODBOARD_IMAGES
from studio.core.errors import InvalidRequest
from studio.ui.common import user_errors
from studio.ui.context import Studio, TabInfo
from studio.ui.i18n import say, tr
from studio.ui.runner import Job
from studio.ui.widgets.prompt_controls import model_choices

TAB = TabInfo("styles", "Style codes")
COLUMNS = ["Code", "Name", "Images", "Image encoder", "Saved"]


@dataclass
class StylesTab:
    moodboard: gr.Gallery
    codes: gr.Dataframe


def opened(item: Any) -> Image.Image:
    """A moodboard picture from the gallery (a path, or a (path, caption) pair), opened lazily: its size is
    checked from the header before anything decodes it."""
    path = item[0] if isinstance(item, tuple | list) else item
    path = getattr(path, "path", None) or (path.get("path") if isinstance(path, dict) else path)
    try:
        return Image.open(str(path))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        name = Path(str(path)).name
        raise InvalidRequest(f"{name} could not be read as a picture ({type(error).__name__}).") from None


def create_tab(studio: Studio) -> StylesTab:
    studio.pipeline("style_code")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            gr.Markdown(
                tr(
                    "A moodboard is a named set of images kept as one style code: their looks are averaged, "
                    "and --sref CODE in Text to Image brings that style to any prompt."
                )
            )
            moodboard = gr.Gallery(
                label=tr(f"Moodboard images (up to {MAX_MOODBOARD_IMAGES})"),
                type="filepath",
                interactive=True,
                file_types=["image"],
                columns=4,
                height=300,
                elem_id="styles-moodboard",
            )
            name = gr.Textbox(label=tr("Moodboard name"), max_lines=1, elem_id="styles-name")
            model = gr.Dropdown(
                choices=model_choices(studio.presets, studio.default_model),
                value=studio.default_model,
                allow_custom_value=True,
                label=tr("Model"),
                info=tr("Its IP-Adapter encodes the images: the code works with models of the same kind."),
                elem_id="styles-model",
            )
            save = gr.Button(tr("Save moodboard"), variant="primary", elem_id="styles-save")
            saved = gr.Markdown(elem_id="styles-saved")
        with gr.Column(scale=3, min_width=360):
            codes = gr.Dataframe(
                value=rows(studio),
                headers=COLUMNS,
                interactive=False,
                label=tr("Saved style codes"),
                elem_id="styles-codes",
            )
            with gr.Row(equal_height=True):
                code = gr.Textbox(label=tr("Style code"), max_lines=1, scale=2, elem_id="styles-code")
                delete = gr.Button(tr("Delete"), variant="stop", scale=1, elem_id="styles-delete")

    def save_moodboard(
        images: list | None, name: str, model: str, request: gr.Request, progress=gr.Progress()
    ) -> tuple:
        """Save a moodboard: 1-12 images, averaged into one style code for --sref CODE.

        Args:
            images: the moodboard's pictures (files).
            name: the moodboard's name (required).
            model: whose IP-Adapter encodes the images (a model preset, or a folder or hub id); its codes
                work with models of the same kind (SD 1.x, SDXL).
        """
        with user_errors():
            if not (name or "").strip():
                raise InvalidRequest("Give the moodboard a name.")
            pictures = tuple(opened(item) for item in images or ())
        values = {"images": pictures, "name": name, "model": model or None}
        [result] = list(studio.runner.run(Job("style_code", values), request, progress))
        message = say(f"Saved as style code {result.code}: type --sref {result.code} in a prompt to use it.")
        return message, rows(studio), result.code

    save.click(save_moodboard, [moodboard, name, model], [saved, codes, code], api_name="save_moodboard")

    def delete_code(typed: str) -> tuple:
        """Delete a saved style code.

        Args:
            typed: the style code, e.g. k3vq7m2a.
        """
        with user_errors():
            studio.style_codes.delete(typed or "")
        gr.Info(say(f"Style code {typed.strip().lower()} is deleted."))
        return rows(studio), ""

    delete.click(delete_code, [code], [codes, code], api_name="delete_style_code")

    def pick(event: gr.SelectData) -> str:
        return event.row_value[0] if event.row_value else gr.skip()

    codes.select(pick, None, [code], api_visibility="private")
    studio.when_loaded(lambda: rows(studio), [], [codes])
    return StylesTab(moodboard, codes)


def rows(studio: Studio) -> list[list]:
    """The saved codes, newest first, as the table shows them."""
    return [
        [style.code, style.name, style.sources, style.encoder, style.created.replace("T", " ")[:16]]
        for style in studio.style_codes.list()
    ]
