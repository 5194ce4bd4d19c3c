"""The PNG Info tab: drop a PNG, read the parameters it carries, send them to a tab in one click."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio.core.metadata import GenerationParameters, read_parameters
from studio.core.peer_metadata import describe_peer_parameters
from studio.core.style_codes import read_style, style_chunk
from studio.ui.common import readable, scrub_paths
from studio.ui.context import Studio, TabInfo
from studio.ui.i18n import say, tr
from studio.ui.runner import Job
from studio.ui.send_to import Sent
from studio.ui.status_line import StatusLine

TAB = TabInfo("png_info", "PNG Info")


@dataclass
class PngInfoTab:
    image: gr.Image
    parameters: gr.JSON


NO_PARAMETERS = "This image carries no generation parameters: there is nothing to read back or send."


def png_parameters(path: str | None) -> dict:
    """Parameters from a PNG: ours in full, another studio's as parsed from its `parameters` chunk; {} for
    none (a plain photo, a normal case)."""
    if not path:
        return {}
    try:
        carried = read_parameters(path)
    except OSError as error:
        raise gr.Error(
            say(scrub_paths(f"{Path(path).name} could not be read as an image ({error}).")),
            print_exception=False,
        ) from error
    if carried is None:
        return {}
    return carried.to_dict() if isinstance(carried, GenerationParameters) else carried


def create_tab(studio: Studio) -> PngInfoTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            image = readable(
                gr.Image(
                    label=tr("Drop an image (PNG, JPEG or WebP) made by this studio or another"),
                    type="filepath",
                    image_mode=None,  # the uploaded file itself: a converted copy would lose its text chunks
                    sources=["upload", "clipboard"],
                    height=360,
                    elem_id="png-info-image",
                )
            )
        with gr.Column(scale=3):
            text = gr.Textbox(
                label=tr("Parameters"), lines=8, interactive=False, buttons=["copy"], elem_id="png-info-text"
            )
            note = StatusLine(elem_id="png-info-note")
            parameters = gr.JSON(label=tr("As fields"), elem_id="png-info-parameters")
            with gr.Row():
                send_to_txt2img = gr.Button(tr("Send to Text to Image"), elem_id="png-info-send-txt2img")
                send_to_img2img = gr.Button(tr("Send to Image to Image"), elem_id="png-info-send-img2img")
            with gr.Group(visible=False, elem_id="png-info-style") as style_group:
                style_note = gr.Markdown(elem_id="png-info-style-note")
                with gr.Row(equal_height=True):
                    style_name = gr.Textbox(
                        label=tr("Style name (optional)"), max_lines=1, scale=2, elem_id="png-info-style-name"
                    )
                    save_style = gr.Button(
                        tr("Save its style as a code"), scale=1, elem_id="png-info-save-style"
                    )

    def png_info(image: str | None):
        """The generation parameters an image carries, as text and as fields; empty when it carries none.

        Args:
            image: a PNG, JPEG or WebP file. Ours give every field; AUTOMATIC1111, Forge, SD.Next, Fooocus,
                InvokeAI, NovelAI and ComfyUI files give prompt, negative prompt, seed, steps, CFG, sampler,
                model and size where they wrote them ("generator" names the studio, "settings" the rest).
        """
        fields = png_parameters(image)
        if not fields:  # what the tab held before goes: nothing stale can be sent on
            return "", {}, NO_PARAMETERS if image else ""
        if "task" in fields:
            return GenerationParameters.from_dict(fields).to_text(), fields, ""
        return describe_peer_parameters(fields), fields, ""

    read = image.change(png_info, [image], [text, parameters, note], api_name="png_info")

    def carried_style(image: str | None):
        style = read_style(image) if image else None
        if style is None:
            return gr.Group(visible=False), ""
        made_of = (
            say(f"made from {style.sources} images") if style.sources > 1 else say("made from one image")
        )
        return gr.Group(visible=True), say(f"This image carries its style ({style.code}, {made_of}).")

    # Only once the image was read: a file that is no picture is one message, not one per handler.
    read.success(carried_style, [image], [style_group, style_note], api_visibility="private")
    studio.pipeline("style_code")

    def save_carried_style(image: str | None, name: str, request: gr.Request, progress=gr.Progress()):
        """Save the style a PNG carries (a result made with style references) as a style code here.

        Args:
            image: a PNG made by this studio with style references.
            name: a name for the style (optional; the PNG's own name when it has one).
        """
        chunk = style_chunk(image) if image else None
        if chunk is None:
            raise gr.Error(say("This image carries no style to save."), print_exception=False)
        values = {"style_chunk": chunk, "name": name or ""}
        [result] = list(studio.runner.run(Job("style_code", values), request, progress))
        return say(f"Saved as style code {result.code}: type --sref {result.code} in a prompt to use it.")

    save_style.click(save_carried_style, [image, style_name], [style_note], api_name="save_png_style")

    def parameters_to_send(path: str | None, fields: dict | None) -> Sent | None:
        if not fields:
            gr.Warning(say("Drop a PNG that carries parameters first: this tab has none to send."))
            return None
        return Sent.of(path, fields)

    def image_to_send(path: str | None, fields: dict | None) -> Sent | None:
        """Any picture can be re-imagined: a plain photo goes with an empty prompt."""
        if not path:
            gr.Warning(say("Drop an image first."))
            return None
        return Sent.of(path, fields or {})

    studio.send_to.send(send_to_txt2img, "txt2img", [image, parameters], parameters_to_send)
    studio.send_to.send(send_to_img2img, "img2img", [image, parameters], image_to_send)
    return PngInfoTab(image, parameters)
