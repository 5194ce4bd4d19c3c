"""Actions on one image of a result grid: Vary (Subtle/Strong) and Send to another tab.

The buttons act on the selected image (the first one when none is selected). Vary runs image to image on
that image with its own parameters, read back from the PNG, and shows the new grid in the same gallery.
Send-to buttons are laid out here and wired in app.py, which knows every tab.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from PIL import Image

from pipelines.image_to_image import variation_request
from studio.presets import Presets
from studio.ui.common import GPU_EVENT
from studio.ui.widgets import JobRunner, ResultPanel, selected_result

SEND_TARGETS = {
    "img2img": "Image to Image",
    "style": "Style Transfer",
    "upscale": "Upscale",
}  # tab id -> label; new tabs add themselves here


@dataclass
class GridActions:
    vary: dict[str, gr.Button]  # by variation name
    send_to: dict[str, gr.Button]  # by target tab id


def create_grid_actions(prefix: str, presets: Presets, *, vary: bool = True) -> GridActions:
    """Buttons under a result grid; `vary=False` for results that are not diffusion images."""
    with gr.Row(elem_classes=["grid-actions"]):
        vary_buttons = {
            name: gr.Button(f"Vary ({name})", size="sm", elem_id=f"{prefix}-vary-{name.lower()}")
            for name in (presets.variations if vary else ())
        }
        send_to = {
            tab: gr.Button(f"Send to {label}", size="sm", elem_id=f"{prefix}-send-{tab}")
            for tab, label in SEND_TARGETS.items()
        }
    return GridActions(vary_buttons, send_to)


def open_image(path: str) -> Image.Image:
    """The picture in a file, its text chunks (the parameters) kept in `.info`."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for unreadable or damaged files
        raise gr.Error(f"The image could not be read ({error}).", print_exception=False) from error


def wire_vary(
    actions: GridActions,
    panel: ResultPanel,
    job_state: gr.State,
    runner: JobRunner,
    presets: Presets,
    num_images: gr.Slider,
) -> list:
    """Vary buttons run image to image on the selected image; returns the events (for Stop)."""

    def make_vary(name: str):
        def vary_selected(gallery_value, params, index, count, request: gr.Request, progress=gr.Progress()):
            path, _ = selected_result(gallery_value, params, index)
            strength = presets.variation(name).strength
            values = variation_request(open_image(path), strength, num_images=int(count))
            yield from runner.run("img2img", values, request, progress)

        return vary_selected

    inputs = [panel.gallery, panel.parameters, panel.selected_index, num_images]
    outputs = [panel.gallery, panel.parameters, job_state]
    return [
        button.click(make_vary(name), inputs, outputs, api_visibility="private", **GPU_EVENT)
        for name, button in actions.vary.items()
    ]
