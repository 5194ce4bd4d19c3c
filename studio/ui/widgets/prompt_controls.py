"""The prompt controls every diffusion tab shares: prompt, negative prompt, styles, model, image count
and the Advanced accordion, with Midjourney's controls and the LoRAs for the tasks that generate; the
API parameters they hold, and moving what is typed in the prompt (`--ar 16:9`) into them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from pipelines.diffusion import MAX_PROMPT_CHARS, DiffusionRequest, GenerationRequest
from pipelines.parts.common import MAX_SEED
from studio.core.presets import Presets
from studio.ui.common import INSTANT_EVENT, slider, user_errors
from studio.ui.endpoints import Parameter, control, field
from studio.ui.i18n import say, say_phrases, tr
from studio.ui.send_to import Sent, Updates, sent_values

if TYPE_CHECKING:  # the Studio is built from these widgets' module's neighbours
    from pipelines.parts.loras import Loras
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
        receivers += [c.model, c.loras, c.tile, c.chaos, c.stylize, c.decoder]
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
                self.decoder: sent.decoder,
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
                "model preset name, hub id, local folder, .safetensors or .gguf path; left out: --model.",
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


def styles_box(prefix: str, presets: Presets) -> gr.Dropdown:
    return gr.Dropdown(
        choices=list(presets.styles),
        value=[],
        multiselect=True,
        label=tr("Styles"),
        info=tr("Stack several: each wraps the prompt of the one before."),
        elem_id=f"{prefix}-styles",
    )


def model_box(prefix: str, presets: Presets, default_model: str, *, info: str = "") -> gr.Dropdown:
    return gr.Dropdown(
        choices=model_choices(presets, default_model),
        value=default_model,
        allow_custom_value=True,
        label=tr("Model"),
        info=tr(info or "A preset, or type a hub id, a local folder, a .safetensors or a .gguf path."),
        scale=2,
        elem_id=f"{prefix}-model",
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
    styles = styles_box(prefix, presets)
    with gr.Row():
        model = model_box(prefix, presets, default_model)
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
        seed, random_seed = seed_row(prefix)
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
            chaos, tile, lora_box, previews, decoder = generation_controls(prefix, loras)

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


def generation_controls(prefix: str, loras: Loras) -> tuple:
    """Midjourney's chaos and tile, the LoRAs, live previews and the decoder: the controls of a task that
    generates."""
    chaos = slider(
        GenerationRequest,
        "chaos",
        label=tr("Variety (chaos)"),
        info=tr("0: the images of a grid differ by seed alone; higher: in guidance, word order, style"),
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
    return chaos, tile, lora_box, previews, decoder


def seed_row(prefix: str) -> tuple[gr.Number, gr.Button]:
    """The seed box, and a button that makes it random again."""
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
    return seed, random_seed
