"""Text to Image's image prompts: up to three style references with weights and the style weight (--sref,
--sw), saving them as a style code and picking saved codes, and a character or object reference (--oref,
--ow)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pipelines.text_to_image import MAX_STYLE_REFERENCES, TextToImageRequest
from studio.core.style_codes import StyleCodes
from studio.ui.common import INSTANT_EVENT, readable, slider
from studio.ui.context import Studio
from studio.ui.endpoints import IMAGE_FILE, Endpoint, Parameter, control, field, present
from studio.ui.i18n import say, tr
from studio.ui.reference_images import ReferenceSlots, reference_slots
from studio.ui.runner import Job


@dataclass
class ImagePromptPanel:
    style: ReferenceSlots
    style_weight: gr.Slider
    object_image: gr.Image
    object_weight: gr.Slider
    saved_codes: gr.Dropdown

    @property
    def settable(self) -> dict[str, gr.components.Component]:
        """The fields `--sw` and `--ow` typed in the prompt move into."""
        return {"style_weight": self.style_weight, "object_weight": self.object_weight}

    def parameters(self) -> list[Parameter]:
        return [
            *self.style.parameters("Style reference image"),
            field(
                TextToImageRequest,
                "style_weight",
                self.style_weight,
                "how strongly the style references apply (Midjourney's --sw; 100 as usual). Saved "
                "style codes go in the prompt: --sref CODE, --sref CODE::2, --sref random.",
            ),
            Parameter(
                "object_image",
                self.object_image,
                IMAGE_FILE,
                None,
                "a character or object to keep in the picture (--oref; needs IP-Adapter Plus weights).",
            ),
            field(
                TextToImageRequest,
                "object_weight",
                self.object_weight,
                "how closely the character or object is kept (--ow; 100 as usual).",
            ),
        ]

    def gathered(self, values: dict[str, Any]) -> dict[str, Any]:
        return self.style.gathered(values)


def code_choices(codes: StyleCodes) -> list[tuple[str, str]]:
    """Saved codes for a dropdown, newest first: "k3vq7m2a · Name (4 images)"."""
    choices = []
    for style in codes.list():
        label = style.code + (f" · {style.name}" if style.name else "")
        if style.sources > 1:
            label += f" ({style.sources})"
        choices.append((label, style.code))
    return choices


def with_style_code(prompt: str, code: str) -> str:
    """The prompt with `--sref code`, beside the codes it already has (not twice)."""
    prompt = prompt or ""
    if re.search(rf"--sref\b[^-]*\b{re.escape(code)}\b", prompt):
        return prompt
    if "--sref " in prompt:
        return prompt.replace("--sref ", f"--sref {code} ", 1)
    return f"{prompt.rstrip()} --sref {code}".strip()


def create_image_prompt_panel(
    prefix: str, studio: Studio, prompt: gr.Textbox, model: gr.Dropdown
) -> ImagePromptPanel:
    studio.pipeline("style_code")
    max_side = studio.settings.max_image_side
    with gr.Accordion(
        tr("Image prompts: style and character references"), open=False, elem_id=f"{prefix}-image-prompts"
    ):
        gr.Markdown(
            tr(
                "Style references lend their colours, brushwork and mood, not their subject. Save them as a "
                "code to reuse with --sref CODE, or to send: a result's PNG carries its style."
            )
        )
        style = reference_slots(
            f"{prefix}-style",
            MAX_STYLE_REFERENCES,
            "Style image",
            images_field="style_images",
            weights_field="style_image_weights",
            slot="style_image",
            max_side=max_side,
        )
        style_weight = slider(
            TextToImageRequest,
            "style_weight",
            step=10,
            label=tr("Style weight (--sw)"),
            elem_id=f"{prefix}-style-weight",
        )
        with gr.Row(equal_height=True):
            style_name = gr.Textbox(
                label=tr("Style name (optional)"), max_lines=1, scale=2, elem_id=f"{prefix}-style-name"
            )
            save = gr.Button(tr("Save as style code"), scale=1, elem_id=f"{prefix}-save-style")
        saved = gr.Markdown(elem_id=f"{prefix}-style-saved")
        saved_codes = gr.Dropdown(
            choices=code_choices(studio.style_codes),
            value=None,
            label=tr("Saved style codes"),
            info=tr("Pick one to add --sref CODE to the prompt."),
            elem_id=f"{prefix}-style-codes",
        )
        object_image = readable(
            gr.Image(
                label=tr("Character or object reference (--oref)"),
                type="pil",
                sources=["upload", "clipboard"],
                height=150,
                elem_id=f"{prefix}-object-image",
            ),
            max_side,
        )
        object_weight = slider(
            TextToImageRequest,
            "object_weight",
            step=10,
            label=tr("Object weight (--ow)"),
            elem_id=f"{prefix}-object-weight",
        )
    panel = ImagePromptPanel(style, style_weight, object_image, object_weight, saved_codes)

    def save_style(values: dict, request: gr.Request, progress: gr.Progress):
        values = style.gathered(present(values))
        values = {
            "images": values.pop("style_images"),
            "weights": values.pop("style_image_weights"),
            **values,
        }
        [result] = list(studio.runner.run(Job("style_code", values), request, progress))
        shown = say(f"Saved as style code {result.code}: type --sref {result.code} in a prompt to use it.")
        return shown, gr.update(choices=code_choices(studio.style_codes), value=None), result.code

    code = gr.Textbox(visible=False)  # the code alone, for API callers
    endpoint = Endpoint(
        "save_style",
        "Save style reference images (mixed by weight; a moodboard when named) as a style code for "
        "--sref CODE. Returns a message, the saved codes, and the code.",
        [
            *style.parameters("Style reference image"),
            control("name", style_name, str, "a name for the style (optional; a moodboard's name)."),
            control(
                "model",
                model,
                str,
                "whose IP-Adapter encodes the images: its codes work with models "
                "of the same kind (SD 1.x, SDXL).",
            ),  # fmt: skip
        ],
        save_style,
        streams=False,
    )
    save.click(endpoint.fn, endpoint.inputs, [saved, saved_codes, code], api_name=endpoint.name)
    saved_codes.input(with_style_code, [prompt, saved_codes], [prompt], **INSTANT_EVENT)
    saved_codes.focus(
        lambda: gr.update(choices=code_choices(studio.style_codes)), None, [saved_codes], **INSTANT_EVENT
    )
    studio.when_loaded(lambda: gr.update(choices=code_choices(studio.style_codes)), [], [saved_codes])
    return panel
