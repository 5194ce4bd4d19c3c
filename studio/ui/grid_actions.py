"""Actions on one image of a result grid: Vary (Subtle/Strong), Enhance, Use this image's seed, Send to
another tab.

The buttons act on the selected image (the first one when none is selected). Vary runs image to image on
that image with its own parameters, read back from the PNG; Enhance makes that image again with the full
decoder (or its preset's fuller model); both show their grid in the same gallery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from pipelines.diffusion import enhanced_values
from pipelines.image_to_image import variation_request
from pipelines.parts.image_prompts import seen_now
from studio.core.metadata import GenerationParameters
from studio.ui.common import INSTANT_EVENT, user_errors
from studio.ui.context import Studio
from studio.ui.endpoints import Endpoint
from studio.ui.i18n import say, tr
from studio.ui.runner import Job
from studio.ui.send_to import gallery_path, selected_result
from studio.ui.widgets.prompt_controls import PromptControls
from studio.ui.widgets.result_panel import ResultPanel

log = logging.getLogger(__name__)
UPSCALE = "upscale"  # the Upscale tab's id


@dataclass
class GridActions:
    vary: dict[str, gr.Button]  # by variation name
    enhance: gr.Button | None
    use_seed: gr.Button
    send_to: dict[str, gr.Button]  # by target tab id


def create_grid_actions(
    prefix: str, studio: Studio, panel: ResultPanel, controls: PromptControls, *, vary: bool = True
) -> GridActions:
    """Buttons under a result grid; `vary=False` for results that are not diffusion images."""
    with gr.Row(elem_classes=["grid-actions"]):
        vary_buttons = {
            name: gr.Button(tr(f"Vary ({name})"), size="sm", elem_id=f"{prefix}-vary-{name.lower()}")
            for name in (studio.presets.variations if vary else ())
        }
        enhance = gr.Button(tr("Enhance"), size="sm", elem_id=f"{prefix}-enhance") if vary else None
        use_seed = gr.Button(tr("Use this image's seed"), size="sm", elem_id=f"{prefix}-use-seed")
        send_to = studio.send_to.grid_buttons(prefix, panel.selection)

    def seed_of_selected(gallery_value, params, index):
        _, chosen = selected_result(gallery_value, params, index)
        if chosen.get("seed") is None:
            raise gr.Error(say("This image has no seed: nothing denoised it."), print_exception=False)
        return chosen["seed"], gr.Accordion(open=True)  # the seed box is in Advanced

    use_seed.click(seed_of_selected, panel.selection, [controls.seed, controls.advanced], **INSTANT_EVENT)

    def picked(gallery_value, params, index, request: gr.Request) -> None:
        soft_vote(studio, gallery_value, index, request)

    if UPSCALE in send_to:  # sending an image to be upscaled picks it, as Vary and Enhance do
        send_to[UPSCALE].click(picked, panel.selection, None, **INSTANT_EVENT)
    return GridActions(vary_buttons, enhance, use_seed, send_to)


def open_image(path: str) -> Image.Image:
    """The picture in a file, its text chunks (the parameters) kept in `.info`."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for unreadable or damaged files
        raise gr.Error(say(f"The image could not be read ({error})."), print_exception=False) from error


def soft_vote(studio: Studio, gallery_value: list | None, index: int | None, request: gr.Request) -> None:
    """Picking image `index` of a grid (to vary or enhance it) counts as a soft vote for it over each of its
    neighbours, in the profile steering the asker's prompts (else their newest; none: nothing is learnt).
    A vote that cannot be kept never stops the action it came with."""
    if not gallery_value or len(gallery_value) < 2:
        return
    try:
        owner = studio.profile_owner(request)
        profile = studio.profiles.own(owner, None)
        if profile is None:
            return
        index = index if index is not None and index < len(gallery_value) else 0
        paths = [gallery_path(item) for item in gallery_value]
        images = [open_image(path) for path in paths]
        seen = seen_now(studio.cache, images, profile.encoder)  # an IP-Adapter's view, if the GPU is free
        for other in [i for i in range(len(images)) if i != index]:
            pair = (seen[index], seen[other])
            studio.profiles.rate(owner, profile.code, images[index], images[other], soft=True, seen=pair)
    except Exception:  # noqa: BLE001 (whatever the vote met, the action it came with goes on)
        log.warning("a soft vote for a picked image was not kept", exc_info=True)


def wire_vary(actions: GridActions, panel: ResultPanel, studio: Studio, num_images: gr.Slider) -> list:
    """Vary buttons run image to image on the selected image; returns the events (for Stop)."""
    studio.pipeline("img2img")

    def make_vary(name: str):
        def vary_selected(gallery_value, params, index, count, request: gr.Request, progress=gr.Progress()):
            path, _ = selected_result(gallery_value, params, index)
            soft_vote(studio, gallery_value, index, request)
            strength = studio.presets.variation(name).strength
            values = variation_request(open_image(path), strength, num_images=int(count))
            job = Job("img2img", values, action=f"Vary {name}")
            yield from panel.run(job, request, progress)

        return vary_selected

    return [
        button.click(
            make_vary(name),
            [*panel.selection, num_images],
            panel.outputs,
            api_visibility="private",
            **panel.event_options,
        )
        for name, button in actions.vary.items()
    ]


def wire_enhance(actions: GridActions, panel: ResultPanel, studio: Studio) -> list:
    """Enhance makes the selected image again, by the job that made it, with the full VAE (when a fast
    decoder made it) or its preset's fuller model; returns the events (for Stop)."""
    if actions.enhance is None:
        return []

    def enhance_selected(
        gallery_value, params, index, job: Job | None, request: gr.Request, progress=gr.Progress()
    ):
        _, chosen = selected_result(gallery_value, params, index)
        if job is None:
            raise gr.Error(say("Make a grid first, then enhance one of its images."), print_exception=False)
        soft_vote(studio, gallery_value, index, request)
        with user_errors():
            values = enhanced_values(job.values, GenerationParameters.from_dict(chosen), studio.presets)
        yield from panel.run(Job(job.task, values, action="Enhance"), request, progress)

    event = actions.enhance.click(
        enhance_selected,
        [*panel.selection, panel.job],
        panel.outputs,
        api_visibility="private",
        **panel.event_options,
    )
    return [event]


def wire_generation(
    studio: Studio,
    endpoint: Endpoint,
    pipeline: Any,
    controls: PromptControls,
    results: ResultPanel,
    actions: GridActions,
    *,
    generate: gr.Button,
    stop: gr.Button,
    shape: dict[str, gr.components.Component],
) -> None:
    """Generate (and Enter in the prompt) runs `endpoint` once the prompt's parameters have moved into the
    controls (and `shape`'s); Vary and Enhance work on its grid; Stop ends any of them."""
    events = [
        controls.read_prompt_first(generate.click, pipeline, shape).success(
            endpoint.fn, endpoint.inputs, results.outputs, api_name=endpoint.name, **results.event_options
        ),
        controls.read_prompt_first(controls.prompt.submit, pipeline, shape).success(
            endpoint.fn, endpoint.inputs, results.outputs, api_visibility="private", **results.event_options
        ),
    ]
    events += wire_vary(actions, results, studio, controls.num_images)
    events += wire_enhance(actions, results, studio)
    results.connect(events, stop)
