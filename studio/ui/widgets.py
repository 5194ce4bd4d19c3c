"""Widgets several tabs share: the prompt controls and the result grid."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from pipelines.diffusion import MAX_PROMPT_CHARS, DiffusionRequest, GeneratedImage
from studio.core.metadata import GenerationParameters
from studio.core.presets import Presets
from studio.ui.common import GPU_EVENT, INSTANT_EVENT, describe_parameters, slider
from studio.ui.endpoints import Parameter, field
from studio.ui.runner import Job
from studio.ui.status_line import StatusLine

if TYPE_CHECKING:  # the Studio is built from these widgets' module's neighbours
    from studio.ui.context import Studio


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
    advanced: gr.Accordion  # where the seed is: opened when a result's seed is put there

    def parameters(self, prompt_doc: str, *, mode: str = "") -> list[Parameter]:
        """The API parameters these controls feed, in this order; `mode` prefixes each description with the
        mode it applies in."""
        parameters = [
            field(DiffusionRequest, "prompt", self.prompt, prompt_doc),
            field(DiffusionRequest, "negative_prompt", self.negative_prompt, "what to keep out."),
            field(
                DiffusionRequest,
                "styles",
                self.styles,
                "style preset names, stacked in order (each wraps the prompt of the one before).",
                annotation=list[str] | None,
            ),
            field(
                DiffusionRequest,
                "model",
                self.model,
                "model preset name, hub id, local folder or .safetensors path; left out: --model.",
            ),
            field(DiffusionRequest, "num_images", self.num_images, "1 to 4; image i uses seed + i."),
            field(DiffusionRequest, "seed", self.seed, "-1 for a random seed, else 0 to 4294967295."),
            field(DiffusionRequest, "steps", self.steps, "denoising steps; left out, the model preset's."),
            field(
                DiffusionRequest,
                "guidance_scale",
                self.guidance_scale,
                "classifier-free guidance, 0 to 30; left out, the model preset's.",
            ),
            field(
                DiffusionRequest,
                "sampler",
                self.sampler,
                'sampler name, e.g. "Euler a"; left out, the model preset\'s.',
            ),
        ]
        if mode:
            parameters = [p.described(f"{mode} mode: {p.doc}") for p in parameters]
        return parameters


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
    with gr.Accordion("Advanced", open=False) as advanced:
        with gr.Row():
            seed = gr.Number(
                value=DiffusionRequest.default("seed"),
                precision=0,
                label="Seed",
                info="-1 picks a new random seed each run",
                minimum=-1,
                maximum=DiffusionRequest.bounds("seed")[1],
                elem_id=f"{prefix}-seed",
            )
            random_seed = gr.Button(
                "Random seed",
                scale=0,
                min_width=150,
                elem_id=f"{prefix}-random-seed",
                elem_classes=["one-line"],
            )
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
        prompt, negative_prompt, styles, model, num_images, seed, steps, guidance_scale, sampler, advanced
    )


class ResultPanel:
    """A result grid: each image saved to the history as it arrives and shown with its parameters; the
    run's job kept for Reroll (whose label says what it will run again); the first image selected when the
    run ends. Progress, refusals and Stop show on a status line under the grid, so the last grid stays in
    view whatever happens to the next run."""

    def __init__(self, prefix: str, studio: Studio, *, reroll: gr.Button | None = None) -> None:
        self.studio = studio
        self.reroll = reroll
        self.gallery = gr.Gallery(
            label="Results",
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
            label="Selected image",
            lines=4,
            interactive=False,
            buttons=["copy"],
            placeholder="Click an image to see how it was made.",
            elem_id=f"{prefix}-selected",
        )
        self.selected_index = gr.State(None)
        with gr.Accordion("All parameters (JSON)", open=False):
            self.parameters = gr.JSON(label="Parameters of each image", elem_id=f"{prefix}-parameters")
        self.job = gr.State(None)  # the last run's Job, for Reroll

        def show_selected(params: list[dict] | None, event: gr.SelectData):
            if not params or event.index is None or event.index >= len(params):
                return None, ""
            return event.index, describe_parameters(params[event.index])

        self.gallery.select(
            show_selected, [self.parameters], [self.selected_index, self.selected_parameters], **INSTANT_EVENT
        )

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
        results: Iterator[GeneratedImage] = self.studio.runner.run(job, request, progress)
        saved: list[tuple[str, GenerationParameters]] = []

        def shown(status: str) -> tuple:
            values = [gallery_items(saved), [p.to_dict() for _, p in saved], job]
            if self.reroll:
                values.append(gr.Button(value=f"Reroll ({job.action})" if job.action else "Reroll"))
            return (*values, status)

        def unchanged(status: str) -> tuple:
            return (*[gr.skip()] * (len(self.outputs) - 1), status)

        try:
            for result in results:
                path = self.studio.history.save(result.image, result.parameters, owner)
                saved.append((str(path), result.parameters))
                yield shown("")
        except gr.Error as error:
            yield unchanged(f"⚠️ {error.message}")
            raise
        yield shown("") if saved else unchanged("Stopped before the first image was finished.")

    def connect(self, events: list, stop: gr.Button) -> None:
        """Reroll runs the last job again with a new seed; Stop ends every run of this grid and says how far
        it got; each run ends with its first image selected."""
        if self.reroll is not None:

            def reroll_last(job: Job | None, request: gr.Request, progress=gr.Progress()):
                if not job:
                    raise gr.Error("Nothing to reroll yet: make a grid first.", print_exception=False)
                yield from self.run(job.rerolled(), request, progress)

            reroll = self.reroll.click(
                reroll_last, [self.job], self.outputs, api_visibility="private", **self.event_options
            )
            events = [*events, reroll]

        for event in events:
            self.select_first_after(event)
        self.studio.runner.stop_button(stop, events, self.status)

    def select_first_after(self, event: Any) -> None:
        """When `event` (a run of this grid) ends, its first image is selected and described."""

        def show_first(params: list[dict] | None):
            return (0, describe_parameters(params[0])) if params else (None, "")

        outputs = [self.selected_index, self.selected_parameters]
        event.then(show_first, [self.parameters], outputs, **INSTANT_EVENT)

    @property
    def selection(self) -> list[gr.components.Component]:
        """The inputs `selected_result` takes."""
        return [self.gallery, self.parameters, self.selected_index]


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


def gallery_items(results: list[tuple[str, GenerationParameters]]) -> list[tuple[str, str]]:
    return [
        (path, f"#{i + 1}" + ("" if params.seed is None else f" · seed {params.seed}"))
        for i, (path, params) in enumerate(results)
    ]
