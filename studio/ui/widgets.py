"""Widgets several tabs share: the prompt controls, the result panel, and the job runner behind them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from pipelines.common import Request, parse_request
from pipelines.diffusion import MAX_PROMPT_CHARS, DiffusionRequest, GeneratedImage
from studio.downloads import downloads_reported_to
from studio.errors import InvalidRequest, RunCancelled
from studio.history import History
from studio.presets import Presets
from studio.ui.common import (
    INSTANT_EVENT,
    StopSignals,
    describe_parameters,
    gallery_items,
    gradio_progress,
    session_of,
    slider,
    user_errors,
)


def model_choices(presets: Presets, current: str | None) -> list[tuple[str, str]]:
    choices = [(preset.label, preset.name) for preset in presets.models.values()]
    if current and current not in presets.models:
        choices.append((current, current))
    return choices


@dataclass
class PromptControls:
    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    styles: gr.Dropdown
    model: gr.Dropdown
    num_images: gr.Slider
    seed: gr.Number
    steps: gr.Slider
    guidance_scale: gr.Slider
    sampler: gr.Dropdown

    def inputs(self) -> list[gr.components.Component]:
        """In the order of the API parameters every diffusion endpoint shares."""
        return [
            self.prompt,
            self.negative_prompt,
            self.styles,
            self.model,
            self.num_images,
            self.seed,
            self.steps,
            self.guidance_scale,
            self.sampler,
        ]


def prompt_box(prefix: str, placeholder: str) -> gr.Textbox:
    return gr.Textbox(
        value="",
        label="Prompt",
        placeholder=placeholder,
        lines=3,
        max_length=MAX_PROMPT_CHARS,
        elem_id=f"{prefix}-prompt",
    )


def prompt_settings(
    prefix: str,
    prompt: gr.Textbox,
    presets: Presets,
    default_model: str,
    *,
    image_count: bool = True,
    max_images: int | None = None,
) -> PromptControls:
    """Negative prompt, styles, model, image count and the Advanced accordion, wired to model defaults."""
    defaults = presets.defaults_for(default_model)
    negative_prompt = gr.Textbox(
        value="",
        label="Negative prompt",
        placeholder="What to keep out of the image",
        lines=1,
        max_length=MAX_PROMPT_CHARS,
        elem_id=f"{prefix}-negative",
    )
    styles = gr.Dropdown(
        choices=list(presets.styles),
        value=[],
        multiselect=True,
        label="Styles",
        info="Stack several: each wraps the prompt of the one before.",
        elem_id=f"{prefix}-styles",
    )
    with gr.Row():
        model = gr.Dropdown(
            choices=model_choices(presets, default_model),
            value=default_model,
            allow_custom_value=True,
            label="Model",
            info="A preset, or type a hub id, a local folder or a .safetensors path.",
            scale=2,
            elem_id=f"{prefix}-model",
        )
        num_images = slider(
            DiffusionRequest,
            "num_images",
            label="Images",
            scale=1,
            elem_id=f"{prefix}-num-images",
            visible=image_count,
            maximum=max_images or DiffusionRequest.bounds("num_images")[1],
        )
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            seed = gr.Number(
                value=-1,
                precision=0,
                label="Seed",
                info="-1 picks a new random seed each run",
                minimum=-1,
                maximum=DiffusionRequest.bounds("seed")[1],
                elem_id=f"{prefix}-seed",
            )
            random_seed = gr.Button("Random seed", scale=0, min_width=90)
        steps = slider(
            DiffusionRequest, "steps", value=defaults.steps, label="Steps", elem_id=f"{prefix}-steps"
        )
        guidance_scale = slider(
            DiffusionRequest,
            "guidance_scale",
            step=0.5,
            value=defaults.guidance_scale,
            label="Guidance (CFG scale)",
            info="0 for turbo models; 5-8 for regular ones",
        )
        sampler = gr.Dropdown(choices=list(presets.samplers), value=defaults.sampler, label="Sampler")

    def apply_model_defaults(model_name: str):
        chosen = presets.defaults_for(model_name)
        return chosen.steps, chosen.guidance_scale, chosen.sampler

    model.change(apply_model_defaults, [model], [steps, guidance_scale, sampler], **INSTANT_EVENT)
    random_seed.click(lambda: -1, None, [seed], **INSTANT_EVENT)
    return PromptControls(
        prompt, negative_prompt, styles, model, num_images, seed, steps, guidance_scale, sampler
    )


def prompt_values(
    prompt, negative_prompt, styles, model, num_images, seed, steps, guidance_scale, sampler
) -> dict[str, Any]:
    """API values (which may be missing or empty) as request fields; empty means 'the preset's'."""
    return {
        "prompt": prompt or "",
        "negative_prompt": negative_prompt or "",
        "styles": tuple(styles or ()),
        "model": model or None,
        "num_images": 1 if num_images in (None, "") else int(num_images),
        "seed": -1 if seed in (None, "") else int(seed),
        "steps": None if steps in (None, "") else int(steps),
        "guidance_scale": None if guidance_scale in (None, "") else float(guidance_scale),
        "sampler": sampler or None,
    }


@dataclass
class ResultPanel:
    gallery: gr.Gallery
    parameters: gr.JSON
    selected_index: gr.State
    selected_parameters: gr.Textbox


def result_panel(prefix: str) -> ResultPanel:
    gallery = gr.Gallery(
        label="Results",
        format="png",
        columns=2,
        object_fit="contain",
        height=560,
        buttons=["download", "fullscreen"],
        interactive=False,
        elem_id=f"{prefix}-gallery",
    )
    selected_parameters = gr.Textbox(
        label="Selected image",
        lines=4,
        interactive=False,
        buttons=["copy"],
        placeholder="Click an image to see how it was made.",
        elem_id=f"{prefix}-selected",
    )
    selected_index = gr.State(None)
    with gr.Accordion("All parameters (JSON)", open=False):
        parameters = gr.JSON(label="Parameters of each image", elem_id=f"{prefix}-parameters")

    def show_selected(params: list[dict] | None, event: gr.SelectData):
        if not params or event.index is None or event.index >= len(params):
            return None, ""
        return event.index, describe_parameters(params[event.index])

    gallery.select(show_selected, [parameters], [selected_index, selected_parameters], **INSTANT_EVENT)
    return ResultPanel(gallery, parameters, selected_index, selected_parameters)


def show_first_result(panel: ResultPanel, *events: Any) -> None:
    """After a run, select the first image so its parameters are on show."""

    def show_first(params: list[dict] | None):
        return (0, describe_parameters(params[0])) if params else (None, "")

    for event in events:
        event.then(
            show_first, [panel.parameters], [panel.selected_index, panel.selected_parameters], **INSTANT_EVENT
        )


def selected_result(
    gallery_value: list | None, params: list[dict] | None, index: int | None
) -> tuple[str, dict]:
    """The file and parameters of the selected image of a result gallery (the first when none is)."""
    if not gallery_value or not params:
        raise gr.Error("Make an image first, then pick one in the results.", print_exception=False)
    index = index if index is not None and index < len(gallery_value) else 0
    item = gallery_value[index]
    path = item[0] if isinstance(item, list | tuple) else item
    if isinstance(path, dict):  # some Gradio versions hand gallery items over as dicts
        path = path.get("image", {}).get("path") or path.get("path")
    return str(path), params[index]


Generate = Callable[..., Iterator[GeneratedImage]]


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.{2 if unit == 'GB' else 0}f} {unit}"
    return f"{count} B"


def showing_downloads(
    generating: Iterator[GeneratedImage], progress: gr.Progress
) -> Iterator[GeneratedImage]:
    """`generating`, with any model it downloads on first use shown as a progress bar in bytes.

    Each step is run inside its own reporting block: Gradio may resume a generator on another thread.
    """

    def show(done: int, total: int) -> None:
        progress(
            done / total if total else None, desc=f"Downloading the model: {_size(done)} of {_size(total)}"
        )

    while True:
        with downloads_reported_to(show):
            generated = next(generating, None)
        if generated is None:
            return
        yield generated


@dataclass(frozen=True)
class Task:
    generate: Generate
    request_type: type[Request]


class JobRunner:
    """Runs pipelines for the tabs: Stop per session, progress, each image saved and shown as it arrives.

    Each run's outputs end with `{"task": ..., "values": ...}`, kept in a tab's state so Reroll can run the
    same job again with a new seed, whichever task made the grid.
    """

    def __init__(
        self,
        history: History,
        stop_signals: StopSignals,
        tasks: dict[str, Task],
        gpu_runner: Callable[[str, Request], list[GeneratedImage]] | None = None,
        *,
        max_image_side: int | None = None,
        max_images: int | None = None,
    ) -> None:
        """`gpu_runner(task, request)`, when given, runs each job whole in another process (ZeroGPU):
        the images arrive together, without step progress or Stop."""
        self.history = history
        self.stop_signals = stop_signals
        self.tasks = tasks
        self.gpu_runner = gpu_runner
        self.max_image_side = max_image_side
        self.max_images = max_images

    def check_limits(self, request: Request) -> None:
        """This server's own image size limit, which may be tighter than what the pipelines accept (its
        image count limit is the Images sliders' maximum, which Gradio enforces)."""
        for name, value in request:
            too_large = (
                self.max_image_side is not None and max(getattr(value, "size", (0,))) > self.max_image_side
            )
            if isinstance(value, Image.Image) and too_large:
                raise InvalidRequest(
                    f"The {name.replace('_', ' ')} is {value.width}×{value.height}; this studio accepts "
                    f"up to {self.max_image_side} pixels on the longer side."
                )

    def run(
        self, task: str, values: dict[str, Any], request: gr.Request | None, progress: gr.Progress
    ) -> Iterator[tuple[list, list[dict], dict]]:
        """Yields (gallery items, parameters, job) after each image and once at the end."""
        job = {"task": task, "values": values}
        with user_errors():
            parsed = parse_request(self.tasks[task].request_type, values)
            self.check_limits(parsed)
            session = session_of(request)
            stop_signal = self.stop_signals.begin(session)
            results = []
            progress(0, desc="Preparing the model…")
            try:
                if self.gpu_runner is not None:
                    progress(0, desc="Waiting for a GPU…")
                    generating = iter(self.gpu_runner(task, parsed))
                else:
                    generating = showing_downloads(
                        self.tasks[task].generate(
                            parsed,
                            progress=gradio_progress(progress, "Denoising"),
                            is_cancelled=stop_signal.is_set,
                        ),
                        progress,
                    )
                for generated in generating:
                    path = self.history.save(generated.image, generated.parameters)
                    results.append((str(path), generated.parameters))
                    yield gallery_items(results), [p.to_dict() for _, p in results], job
            except RunCancelled:
                total = getattr(parsed, "num_images", len(results))
                gr.Warning(f"Stopped: {len(results)} of {total} images finished.")
            finally:
                self.stop_signals.end(session, stop_signal)
            yield gallery_items(results), [p.to_dict() for _, p in results], job

    def reroll(self, job: dict | None, request: gr.Request, progress=gr.Progress()):
        if not job:
            raise gr.Error("Nothing to reroll yet: make a grid first.", print_exception=False)
        yield from self.run(job["task"], {**job["values"], "seed": -1}, request, progress)

    def stop_button(self, button: gr.Button, events: list) -> None:
        def stop_running(request: gr.Request):
            self.stop_signals.stop(session_of(request))

        button.click(stop_running, None, None, cancels=events, **INSTANT_EVENT)
