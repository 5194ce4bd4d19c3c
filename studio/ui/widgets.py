"""Widgets several tabs share: the prompt controls and the result grid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from pipelines.common import MAX_SEED
from pipelines.diffusion import MAX_PROMPT_CHARS, DiffusionRequest, GeneratedImage, GenerationRequest
from pipelines.previews import PreviewImage
from studio.core.errors import ResultNotSaved
from studio.core.metadata import GenerationParameters, read_parameters
from studio.core.presets import ASPECT_RATIO_RANGE_TEXT, Presets
from studio.ui.common import GPU_EVENT, INSTANT_EVENT, describe_parameters, slider, user_errors
from studio.ui.endpoints import Parameter, control, field
from studio.ui.i18n import say, say_phrases, tr
from studio.ui.runner import Job
from studio.ui.send_to import Sent, Updates, gallery_path, selected_result, sent_values
from studio.ui.status_line import StatusLine

if TYPE_CHECKING:  # the Studio is built from these widgets' module's neighbours
    from pipelines.loras import Loras
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
    stylize: gr.Slider
    # Midjourney's controls and LoRAs, for the tasks that generate (not the upscaler's creative pass)
    chaos: gr.Slider | None = None
    tile: gr.Checkbox | None = None
    loras: gr.Textbox | None = None
    previews: gr.Radio | None = None
    decoder: gr.Radio | None = None

    @property
    def received_outputs(self) -> list[gr.components.Component]:
        """What `received` may fill: the controls this task has."""
        c = self
        receivers = [c.prompt, c.negative_prompt, c.styles, c.seed, c.steps, c.guidance_scale, c.sampler]
        receivers += [c.model, c.loras, c.tile, c.chaos, c.stylize]
        return [component for component in receivers if component is not None]

    def received(self, sent: Sent, presets: Presets) -> Updates:
        """The controls' values from what was sent (an image's parameters, another studio's mapped to
        ours); what has no equivalent here is left as it is and named in a note."""
        notes = []
        sampler = presets.sampler_named(sent.sampler, sent.scheduler)
        if sent.sampler and sampler is None:
            named = " ".join(part for part in (sent.sampler, sent.scheduler) if part)
            notes.append(f"its sampler {named} has no equivalent here, so the current one stays")
        seed = sent.seed
        if seed is not None and not -1 <= seed <= MAX_SEED:
            seed = sent.seed % (MAX_SEED + 1)
            notes.append(f"its seed {sent.seed} is beyond this studio's 0–{MAX_SEED}, so {seed} is used")
        known_model = sent.model and (sent.model in presets.models or Path(sent.model).exists())
        if sent.model and not known_model:
            notes.append(f"its model {sent.model} is not on this studio, so the current one stays")
        if notes:
            gr.Info(say(f"From {sent.generator or 'the image'}:") + " " + say_phrases(notes, opens=False))
        styles = None if sent.styles is None else [style for style in sent.styles if style in presets.styles]
        return sent_values(
            {
                self.prompt: sent.prompt,
                self.negative_prompt: sent.negative_prompt,
                self.styles: styles,
                self.seed: seed,
                self.steps: sent.steps or None,
                self.guidance_scale: sent.guidance_scale,
                self.sampler: sampler,
                self.model: sent.model if known_model else None,
                self.loras: sent.loras,
                self.tile: sent.tile,
                self.chaos: sent.chaos,
                self.stylize: sent.stylize,
            }
        )

    @property
    def fields(self) -> dict[str, gr.components.Component]:
        """The request fields these controls hold, by name: what the prompt's parameters may set."""
        named = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "stylize": self.stylize,
            "chaos": self.chaos,
            "tile": self.tile,
            "loras": self.loras,
        }
        return {name: component for name, component in named.items() if component is not None}

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
            field(DiffusionRequest, "num_images", self.num_images, "image i uses seed + i."),
            field(DiffusionRequest, "seed", self.seed, "-1 for a random seed."),
            field(DiffusionRequest, "steps", self.steps, "denoising steps; left out, the model preset's."),
            field(
                DiffusionRequest,
                "guidance_scale",
                self.guidance_scale,
                "classifier-free guidance; left out, the model preset's.",
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

    def later_parameters(self) -> list[Parameter]:
        """The API parameters added after the first ones were published: every endpoint lists them last,
        so calls that pass parameters by position keep working."""
        parameters = [
            field(
                DiffusionRequest,
                "stylize",
                self.stylize,
                "how much the style presets' own words weigh; 100 as written (--stylize).",
            )
        ]
        if self.loras is not None:  # the controls of the tasks that generate
            parameters += [
                field(
                    GenerationRequest,
                    "chaos",
                    self.chaos,
                    "how much the images of a grid differ beyond their seeds (--chaos).",
                ),
                field(GenerationRequest, "tile", self.tile, "true: a seamless image that repeats (--tile)."),
                control(
                    "loras",
                    self.loras,
                    str,
                    'LoRAs, comma separated, each "name" or "name:weight" (-4 to 4): a file in the LoRA '
                    "folder, a .safetensors path or a hub id.",
                ),
                field(
                    GenerationRequest,
                    "previews",
                    self.previews,
                    'live previews in the page while denoising: "off", "approximate" (no weights) or '
                    '"taesd" (the tiny autoencoder, else approximate). Never part of the answer.',
                ),
                field(
                    GenerationRequest,
                    "decoder",
                    self.decoder,
                    '"full": the model\'s VAE; "fast": TAESD, far quicker on a CPU; "auto": fast on a CPU, '
                    "full on a GPU. Recorded in the PNG.",
                ),
            ]
        return parameters

    def read_prompt_first(
        self,
        trigger: Callable[..., Any],
        pipeline: Any,
        more_fields: dict[str, gr.components.Component] | None = None,
    ) -> Any:
        """An event on `trigger` (a button's `click`, a prompt's `submit`) that moves the parameters typed
        in the prompt (`--ar 16:9 --no trees`, `<lora:x:0.8>`) into the controls before the run, so what
        the page shows is what runs; what the task cannot honour stays in the prompt for the run to name.
        Chain the run with `.success(...)`. A prompt of several lines (a batch) is left to the run."""
        targets = {**self.fields, **(more_fields or {})}
        names = list(targets)

        def move_parameters(*values: Any) -> tuple:
            typed = dict(zip(names, values, strict=True))
            if len([line for line in str(typed["prompt"] or "").splitlines() if line.strip()]) > 1:
                return (gr.skip(),) * len(names)
            with user_errors():
                moved, notes = pipeline.read_prompt_parameters(typed, keep_unhonoured=True, settable=names)
            for note in notes:
                gr.Info(say_phrases([note]))
            # A text box someone may still be typing in is left alone when unchanged; any other control
            # gets its value back, since an update (even a skip) rebuilds it without `checked_by_request`.
            return tuple(
                gr.skip()
                if moved[name] == typed[name] and isinstance(targets[name], gr.Textbox)
                else moved[name]
                for name in names
            )

        components = list(targets.values())
        return trigger(move_parameters, components, components, **INSTANT_EVENT)


def prompt_box(prefix: str, placeholder: str) -> gr.Textbox:
    return gr.Textbox(
        value="",
        label=tr("Prompt"),
        placeholder=tr(placeholder),
        lines=3,
        max_length=MAX_PROMPT_CHARS,
        elem_id=f"{prefix}-prompt",
    )


def prompt_settings(
    prefix: str, prompt: gr.Textbox, studio: Studio, *, loras: Loras | None = None, image_count: bool = True
) -> PromptControls:
    """Negative prompt, styles, model, image count and the Advanced accordion, wired to model defaults;
    for a task that generates (one with `loras`), Midjourney's chaos and tile and the LoRAs."""
    presets, default_model = studio.presets, studio.default_model
    defaults = presets.defaults_for(default_model)
    negative_prompt = gr.Textbox(
        value="",
        label=tr("Negative prompt"),
        placeholder=tr("What to keep out of the image"),
        lines=1,
        max_length=MAX_PROMPT_CHARS,
        elem_id=f"{prefix}-negative",
    )
    styles = gr.Dropdown(
        choices=list(presets.styles),
        value=[],
        multiselect=True,
        label=tr("Styles"),
        info=tr("Stack several: each wraps the prompt of the one before."),
        elem_id=f"{prefix}-styles",
    )
    with gr.Row():
        model = gr.Dropdown(
            choices=model_choices(presets, default_model),
            value=default_model,
            allow_custom_value=True,
            label=tr("Model"),
            info=tr("A preset, or type a hub id, a local folder or a .safetensors path."),
            scale=2,
            elem_id=f"{prefix}-model",
        )
        num_images = slider(
            DiffusionRequest,
            "num_images",
            label=tr("Images"),
            scale=1,
            elem_id=f"{prefix}-num-images",
            visible=image_count,
            maximum=studio.settings.max_images,
        )
    with gr.Accordion(tr("Advanced"), open=False) as advanced:
        with gr.Row():
            seed = gr.Number(
                value=DiffusionRequest.default("seed"),
                precision=0,
                label=tr("Seed"),
                info=tr("-1 picks a new random seed each run"),
                minimum=-1,
                maximum=DiffusionRequest.bounds("seed")[1],
                elem_id=f"{prefix}-seed",
            )
            random_seed = gr.Button(
                tr("Random seed"),
                scale=0,
                min_width=150,
                elem_id=f"{prefix}-random-seed",
                elem_classes=["one-line"],
            )
        steps = slider(
            DiffusionRequest, "steps", value=defaults.steps, label=tr("Steps"), elem_id=f"{prefix}-steps"
        )
        guidance_scale = slider(
            DiffusionRequest,
            "guidance_scale",
            step=0.5,
            value=defaults.guidance_scale,
            label=tr("Guidance (CFG scale)"),
            info=tr("0 for turbo models; 5-8 for regular ones"),
        )
        sampler = gr.Dropdown(choices=list(presets.samplers), value=defaults.sampler, label=tr("Sampler"))
        stylize = slider(
            DiffusionRequest,
            "stylize",
            step=10,
            label=tr("Stylize"),
            info=tr("How much the styles' own words weigh: 0 barely, 100 as written, 1000 the most"),
            elem_id=f"{prefix}-stylize",
        )
        chaos = tile = lora_box = previews = decoder = None
        if loras is not None:
            chaos = slider(
                GenerationRequest,
                "chaos",
                label=tr("Variety (chaos)"),
                info=tr(
                    "0: the images of a grid differ by seed alone; higher: in guidance, word order, style"
                ),
                elem_id=f"{prefix}-chaos",
            )
            tile = gr.Checkbox(
                value=GenerationRequest.default("tile"),
                label=tr("Tile: a seamless image that repeats (textures, wallpapers)"),
                elem_id=f"{prefix}-tile",
            )
            how = "name or name:weight, comma separated, or <lora:name:0.8> in the prompt. Found:"
            # The page translates the words; the names found are file names and stay as they are.
            found = ", ".join(loras.names())
            lora_box = gr.Textbox(
                value="",
                label=tr("LoRAs"),
                placeholder=tr("detail:0.8, paper-cut"),
                info=f"{tr(how)} {found}"
                if found
                else tr(f"{how} none yet (put .safetensors files in the LoRA folder)"),
                elem_id=f"{prefix}-loras",
            )
            with gr.Row():
                previews = gr.Radio(
                    choices=[("Off", "off"), ("Approximate", "approximate"), ("TAESD", "taesd")],
                    value=GenerationRequest.default("previews"),
                    label=tr("Live previews"),
                    info=tr("TAESD where its weights are here, else a quick approximation"),
                    elem_id=f"{prefix}-previews",
                )
                decoder = gr.Radio(
                    choices=[("Auto", "auto"), ("Fast (TAESD)", "fast"), ("Full (VAE)", "full")],
                    value=GenerationRequest.default("decoder"),
                    label=tr("Decoder"),
                    info=tr("Auto: Fast on a CPU, Full on a GPU. Enhance redoes an image with Full."),
                    elem_id=f"{prefix}-decoder",
                )

    def apply_model_defaults(model_name: str):
        chosen = presets.defaults_for(model_name)
        return chosen.steps, chosen.guidance_scale, chosen.sampler

    model.change(apply_model_defaults, [model], [steps, guidance_scale, sampler], **INSTANT_EVENT)
    random_seed.click(lambda: -1, None, [seed], **INSTANT_EVENT)
    return PromptControls(
        prompt,
        negative_prompt,
        styles,
        model,
        num_images,
        seed,
        steps,
        guidance_scale,
        sampler,
        advanced,
        stylize,
        chaos,
        tile,
        lora_box,
        previews,
        decoder,
    )


def aspect_ratio_box(prefix: str, presets: Presets, default: str) -> gr.Dropdown:
    """The presets to pick from, and any other width:height typed in (or moved here from `--ar`)."""
    return gr.Dropdown(
        choices=list(presets.aspect_ratios),
        value=default,
        allow_custom_value=True,
        label=tr("Aspect ratio"),
        info=tr(f"A preset, or type any width:height from {ASPECT_RATIO_RANGE_TEXT}"),
        elem_id=f"{prefix}-aspect-ratio",
    )


def aspect_ratio_parameter(request_type: type[DiffusionRequest], box: gr.Dropdown) -> Parameter:
    return field(
        request_type,
        "aspect_ratio",
        box,
        f'a preset ("1:1", "16:9"…) or any width:height from {ASPECT_RATIO_RANGE_TEXT}, e.g. "2:1".',
    )


def shaped_outputs(controls: PromptControls, aspect_ratio: gr.Dropdown) -> list[gr.components.Component]:
    """`received_outputs` with the aspect ratio, for a task that makes a new picture."""
    return [*controls.received_outputs, aspect_ratio]


def shaped_values(
    controls: PromptControls, aspect_ratio: gr.Dropdown, sent: Sent, presets: Presets
) -> Updates:
    """The values of `shaped_outputs`: the settings received, and the aspect ratio the image recorded (else
    the one that makes its shape)."""
    has_size = sent.width and sent.height
    shape = sent.aspect_ratio or (presets.ratio_of(sent.width, sent.height) if has_size else None)
    return sent_values({**controls.received(sent, presets), aspect_ratio: shape})


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
