"""The Style Transfer tab: instant neural style (offline, CPU) or diffusion style transfer (ControlNet +
IP-Adapter on the cached base model).

One content image and one optional style image serve both modes. Instant mode mixes up to three built-in
styles, picked from their previews, or takes the style image as the style; diffusion mode holds the content's
structure with a ControlNet (its map shown as a preview) and takes the style from the style image, style
presets and the prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from pipelines.diffusion_style import STRUCTURES, DiffusionStylePipeline, DiffusionStyleRequest
from pipelines.instant_style import MAX_MIXED_STYLES, InstantStyleRequest
from pipelines.parts.loras import Loras
from studio.core.requests import parse_request
from studio.ui.common import INSTANT_EVENT, readable, slider, user_errors
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import REQUIRED, Endpoint, Parameter, control, field, present
from studio.ui.grid_actions import GridActions, create_grid_actions, open_image
from studio.ui.i18n import say, tr
from studio.ui.runner import Job
from studio.ui.send_to import Sent, Updates, image_and_prompt, sent_values
from studio.ui.widgets.prompt_controls import PromptControls, prompt_box, prompt_settings
from studio.ui.widgets.result_panel import ResultPanel

TAB = TabInfo("style", "Style Transfer", takes_images=True)
MODES = [
    ("Instant (neural style, fast on CPU)", "instant"),
    ("Diffusion (keeps structure, any style)", "diffusion"),
]
STYLE_SOURCES = [("Built-in styles", "builtin"), ("The style image", "image")]
# Cheap previews may run beside a GPU job: the structure map takes the GPU lock itself.
PREVIEW_EVENT = {"concurrency_id": "preview", "concurrency_limit": 2, "api_visibility": "private"}


@dataclass
class InstantControls:
    """Instant mode's controls: built-in styles mixed by weight, or the style image."""

    group: gr.Group
    style_source: gr.Radio
    previews: gr.Gallery
    styles: gr.Dropdown
    weights: list[gr.Slider]
    strength: gr.Slider
    working_size: gr.Slider
    preserve_colors: gr.Checkbox

    @property
    def settings(self) -> list[gr.components.Component]:
        """What a reopened link gets back."""
        return [self.style_source, self.styles, *self.weights, self.strength, self.working_size,
                self.preserve_colors]  # fmt: skip


@dataclass
class DiffusionControls:
    """Diffusion mode's controls: the structure held, the style image's strength, and the prompt's."""

    group: gr.Group
    structure: gr.Dropdown
    structure_strength: gr.Slider
    style_strength: gr.Slider
    denoising_strength: gr.Slider
    canny_low: gr.Slider
    canny_high: gr.Slider
    prompt: PromptControls

    @property
    def recorded(self) -> dict[str, gr.components.Component]:
        """The settings a result records, by name."""
        names = ("structure", "structure_strength", "style_strength", "denoising_strength")
        return {name: getattr(self, name) for name in (*names, "canny_low", "canny_high")}


@dataclass
class StyleTransferTab:
    image: gr.Image
    style_image: gr.Image
    mode: gr.Radio
    instant: InstantControls
    diffusion: DiffusionControls
    generate: gr.Button
    stop: gr.Button
    results: ResultPanel
    actions: GridActions
    structure_map: gr.Image


def create_tab(studio: Studio) -> StyleTransferTab:
    instant_style = studio.pipeline("style_instant")
    diffusion_style = studio.pipeline("style_diffusion")
    tab = layout(studio, instant_style.style_names(), instant_style.preview_path, diffusion_style.loras)
    endpoint = style_transfer_endpoint(tab)
    # --iw weighs the style image (an image prompt) against the text
    style_strength = {"style_strength": tab.diffusion.style_strength}
    event = tab.diffusion.prompt.read_prompt_first(tab.generate.click, diffusion_style, style_strength)
    event = event.success(
        endpoint.fn, endpoint.inputs, tab.results.outputs, api_name=endpoint.name, **tab.results.event_options
    )
    tab.results.connect([event], tab.stop)
    wire_controls(tab, instant_style.style_names())
    wire_structure_preview(tab, diffusion_style)
    studio.send_to.receive(
        TAB.id,
        [tab.image, tab.diffusion.prompt.prompt],
        image_and_prompt(tab.image, tab.diffusion.prompt.prompt),
    )
    wire_restore(studio, tab, instant_style.style_names())
    return tab


def layout(
    studio: Studio, style_names: list[str], preview_path: Callable[[str], Path], loras: Loras
) -> StyleTransferTab:
    max_side = studio.settings.max_image_side
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                image = readable(
                    gr.Image(
                        label=tr("Content image"),
                        type="filepath",
                        image_mode=None,
                        format="png",
                        sources=["upload", "clipboard"],
                        height=260,
                        elem_id="style-image",
                    ),
                    max_side,
                )
                style_image = readable(
                    gr.Image(
                        label=tr("Style image (any painting)"),
                        type="pil",
                        image_mode="RGB",
                        sources=["upload", "clipboard"],
                        height=260,
                        elem_id="style-style-image",
                    ),
                    max_side,
                )
            mode = gr.Radio(choices=MODES, value="instant", label=tr("Mode"), elem_id="style-mode")
            instant = instant_layout(style_names, preview_path)
            diffusion = diffusion_layout(studio, loras)
            with gr.Row():
                generate = gr.Button(tr("Apply style"), variant="primary", elem_id="style-generate", scale=2)
                stop = gr.Button(tr("Stop"), variant="stop", elem_id="style-stop", scale=1)
        with gr.Column(scale=3, min_width=360):
            results = ResultPanel("style", studio)
            actions = create_grid_actions("style", studio, results, diffusion.prompt, vary=False)
            structure_map = gr.Image(
                label=tr("Structure map (what the ControlNet follows)"),
                type="pil",
                format="png",
                interactive=False,
                height=260,
                visible=False,
                elem_id="style-structure-map",
            )
    return StyleTransferTab(
        image, style_image, mode, instant, diffusion, generate, stop, results, actions, structure_map
    )


def instant_layout(style_names: list[str], preview_path: Callable[[str], Path]) -> InstantControls:
    with gr.Group(visible=True) as group:
        style_source = gr.Radio(
            choices=STYLE_SOURCES, value="builtin", label=tr("Style from"), elem_id="style-source"
        )
        previews = gr.Gallery(
            value=[(str(preview_path(name)), name) for name in style_names],
            label=tr("Built-in styles: click to add one (up to three)"),
            columns=4,
            height=360,
            allow_preview=False,
            object_fit="cover",
            buttons=[],
            interactive=False,
            elem_id="style-previews",
        )
        styles = gr.Dropdown(
            choices=style_names,
            value=style_names[:1],
            multiselect=True,
            max_choices=MAX_MIXED_STYLES,
            label=tr("Styles to mix"),
            elem_id="style-neural-styles",
        )
        with gr.Column():  # stacked: a style's name fits on its slider's label line
            weights = [
                gr.Slider(
                    0,
                    1,
                    value=InstantStyleRequest.default("style_weights")[0],
                    step=0.05,
                    label=tr(f"Weight of style {n + 1}"),
                    visible=n == 0,
                    elem_id=f"style-weight-{n + 1}",
                )
                for n in range(MAX_MIXED_STYLES)
            ]
        with gr.Row():
            strength = slider(
                InstantStyleRequest,
                "strength",
                step=0.05,
                label=tr("Strength"),
                info=tr("0 keeps the photo, 1 is the full style"),
                elem_id="style-strength",
            )
            working_size = slider(
                InstantStyleRequest,
                "working_size",
                step=64,
                label=tr("Working size"),
                info=tr("Larger: finer brush strokes; the result keeps the photo's size"),
            )
        preserve_colors = gr.Checkbox(label=tr("Keep the photo's colours"), value=False)
    return InstantControls(
        group, style_source, previews, styles, weights, strength, working_size, preserve_colors
    )


def diffusion_layout(studio: Studio, loras: Loras) -> DiffusionControls:
    with gr.Group(visible=False) as group:
        with gr.Row():
            structure = gr.Dropdown(
                choices=[(label, name) for name, label in STRUCTURES.items()],
                value=DiffusionStyleRequest.default("structure"),
                label=tr("Structure held by"),
                elem_id="style-structure",
            )
            structure_strength = slider(
                DiffusionStyleRequest, "structure_strength", step=0.05, label=tr("Structure strength")
            )
        with gr.Row():
            style_strength = slider(
                DiffusionStyleRequest,
                "style_strength",
                step=0.05,
                label=tr("Style image strength"),
                info=tr("How strongly the style image's look is applied (IP-Adapter)"),
            )
            denoising_strength = slider(
                DiffusionStyleRequest,
                "denoising_strength",
                step=0.05,
                label=tr("Denoising strength"),
                info=tr("Lower keeps more of the content's colours"),
            )
        with gr.Accordion(tr("Edge thresholds (Canny)"), open=False), gr.Row():
            canny_low = slider(DiffusionStyleRequest, "canny_low", label=tr("Low"))
            canny_high = slider(DiffusionStyleRequest, "canny_high", label=tr("High"))
        prompt = prompt_box("style", "Optional: describe the style, e.g. 'ukiyo-e woodblock print'")
        controls = prompt_settings("style", prompt, studio, loras=loras)
    return DiffusionControls(
        group,
        structure,
        structure_strength,
        style_strength,
        denoising_strength,
        canny_low,
        canny_high,
        controls,
    )


def style_transfer_endpoint(tab: StyleTransferTab) -> Endpoint:
    """/style_transfer: the content image, the mode, then each mode's settings."""
    instant, diffusion = tab.instant, tab.diffusion

    def instant_parameter(
        name: str, component: gr.components.Component, doc: str, annotation: object = None
    ) -> Parameter:
        if annotation is not None:  # a page control with no request field of its own
            return control(name, component, annotation, f"instant mode: {doc}")
        return field(InstantStyleRequest, name, component, f"instant mode: {doc}")

    def diffusion_parameter(name: str, doc: str) -> Parameter:
        return field(DiffusionStyleRequest, name, diffusion.recorded[name], f"diffusion mode: {doc}")

    style_image = field(
        DiffusionStyleRequest,
        "style_image",
        tab.style_image,
        'a painting whose style to use (instant mode with style_source "image", or diffusion mode).',
        annotation=Image.Image | None,
    )
    diffusion_parameters = [
        diffusion_parameter("structure", "canny, softedge, lineart, depth or none."),
        diffusion_parameter("structure_strength", "ControlNet conditioning scale."),
        diffusion_parameter("style_strength", "how strongly the style image applies."),
        diffusion_parameter("denoising_strength", "how far to move from the content."),
        diffusion_parameter("canny_low", "Canny low threshold."),
        diffusion_parameter("canny_high", "Canny high threshold."),
        *diffusion.prompt.parameters(
            "describes the style or the picture (optional with a style image).", mode="diffusion"
        ),
    ]
    diffusion_parameters += [
        p.described(f"diffusion mode: {p.doc}") for p in diffusion.prompt.later_parameters()
    ]
    weights = [
        instant_parameter(f"weight_{n + 1}", weight, f"weight of built-in style {n + 1} (0-1).", float)
        for n, weight in enumerate(instant.weights)
    ]
    diffusion_fields = ["style_image", *(p.name for p in diffusion_parameters)]

    def style_transfer(values: dict, request: gr.Request, progress: gr.Progress):
        for name, choices in (("mode", MODES), ("style_source", STYLE_SOURCES)):
            if values[name] not in [value for _, value in choices]:
                known = " or ".join(f'"{value}"' for _, value in choices)
                raise gr.Error(say(f"{name} must be {known} (got {values[name]!r})."), print_exception=False)
        content = open_image(values["image"]) if values["image"] else None
        if values["mode"] == "instant":
            job = Job("style_instant", present({"image": content, **instant_values(values)}))
        else:
            job = Job(
                "style_diffusion",
                present({name: values[name] for name in diffusion_fields} | {"image": content}),
            )
        yield from tab.results.run(job, request, progress)

    mode_doc = '"instant" (neural style, offline, fast on a CPU) or "diffusion" (ControlNet + IP-Adapter).'
    return Endpoint(
        "style_transfer",
        "Restyle an image. Returns the PNGs (parameters embedded) and their parameters.",
        [
            Parameter("image", tab.image, str | None, REQUIRED, "the content image."),
            control("mode", tab.mode, str, mode_doc),
            style_image,
            instant_parameter(
                "style_source",
                instant.style_source,
                '"builtin" (neural_styles) or "image" (the style image).',
                str,
            ),
            instant_parameter(
                "neural_styles",
                instant.styles,
                "up to three built-in style names, mixed by weight_1..weight_3.",
                list[str] | None,
            ),
            *weights,
            instant_parameter("strength", instant.strength, "0 keeps the photo, 1 is the full style."),
            instant_parameter(
                "working_size",
                instant.working_size,
                "longer side the network works at (the result keeps its size).",
            ),
            instant_parameter("preserve_colors", instant.preserve_colors, "keep the photo's colours."),
            *diffusion_parameters,
        ],
        style_transfer,
    )


def instant_values(values: dict) -> dict:
    """An instant-mode request's fields from the endpoint's values."""
    chosen = list(values["neural_styles"] or [])
    weights = [values[f"weight_{n + 1}"] for n in range(MAX_MIXED_STYLES)]
    by_image = values["style_source"] == "image"
    if by_image and values["style_image"] is None:
        raise gr.Error(say("Add a style image, or choose built-in styles."), print_exception=False)
    return {
        "styles": tuple(chosen),
        "style_weights": tuple(float(w) for w in weights[: len(chosen)]),
        "style_image": values["style_image"] if by_image else None,
        **{name: values[name] for name in ("strength", "working_size", "preserve_colors")},
    }


def wire_controls(tab: StyleTransferTab, style_names: list[str]) -> None:
    """The controls follow the mode and the chosen styles."""
    instant = tab.instant

    def show_mode(chosen_mode: str):
        diffusion = chosen_mode == "diffusion"
        return gr.Group(visible=not diffusion), gr.Group(visible=diffusion), gr.Image(visible=diffusion)

    mode_shows = [instant.group, tab.diffusion.group, tab.structure_map]
    tab.mode.change(show_mode, [tab.mode], mode_shows, **INSTANT_EVENT)

    def label_weights(chosen: list[str] | None):
        chosen = list(chosen or [])
        return [
            gr.Slider(
                visible=n < len(chosen), label=say(f"Weight of {chosen[n]}") if n < len(chosen) else None
            )
            for n in range(MAX_MIXED_STYLES)
        ]

    instant.styles.change(label_weights, [instant.styles], instant.weights, **INSTANT_EVENT)

    def add_style(chosen: list[str] | None, event: gr.SelectData):
        chosen = list(chosen or [])
        picked = style_names[event.index]
        if picked not in chosen and len(chosen) >= MAX_MIXED_STYLES:
            gr.Warning(
                say(f"Up to {MAX_MIXED_STYLES} styles mix: remove one from Styles to mix to add {picked}.")
            )
            return gr.skip(), "builtin"
        return (chosen if picked in chosen else [*chosen, picked]), "builtin"

    picked = [instant.styles, instant.style_source]
    instant.previews.select(add_style, [instant.styles], picked, **INSTANT_EVENT)
    tab.style_image.upload(lambda: "image", None, [instant.style_source], **INSTANT_EVENT)


def wire_structure_preview(tab: StyleTransferTab, diffusion_style: DiffusionStylePipeline) -> None:
    """Diffusion mode shows the map its ControlNet will follow, made again when what makes it changes."""
    diffusion = tab.diffusion

    def preview_structure(path: str | None, chosen_mode: str, chosen: str, low: int, high: int):
        if not path or chosen_mode != "diffusion":
            return None
        values = {
            "image": open_image(path),
            "structure": chosen,
            "canny_low": int(low),
            "canny_high": int(high),
        }
        with user_errors():
            return diffusion_style.preview_structure(parse_request(DiffusionStyleRequest, values))

    inputs = [tab.image, tab.mode, diffusion.structure, diffusion.canny_low, diffusion.canny_high]
    changes = [tab.image.change, tab.mode.change, diffusion.structure.change]
    for trigger in (*changes, diffusion.canny_low.release, diffusion.canny_high.release):
        trigger(preview_structure, inputs, [tab.structure_map], **PREVIEW_EVENT)


def wire_restore(studio: Studio, tab: StyleTransferTab, style_names: list[str]) -> None:
    """A page opened from a link gets the settings of its grid back (the content and style images are not
    recorded): the mode's own controls; the other mode's stay as they are."""
    instant, diffusion = tab.instant, tab.diffusion

    def restored(values: dict) -> Updates:
        extras = values.get("extras") or {}
        mode = extras.get("mode") if values.get("task") == "style_transfer" else None
        if mode == "instant":
            return {tab.mode: "instant", **sent_values(instant_settings(extras))}
        if mode == "diffusion":
            received = diffusion.prompt.received(Sent.of(None, values), studio.presets)
            recorded = {component: extras.get(name) for name, component in diffusion.recorded.items()}
            return {tab.mode: "diffusion", **sent_values(recorded), **received}
        return {}

    def instant_settings(extras: dict) -> dict:
        mixed = zip(extras.get("neural_styles", []), extras.get("style_weights", []), strict=False)
        chosen = [(name, weight) for name, weight in mixed if name in style_names]
        return {
            instant.style_source: "image" if "style_image" in extras else "builtin",
            instant.styles: [name for name, _ in chosen] or None,
            **{slider: weight for slider, (_, weight) in zip(instant.weights, chosen, strict=False)},
            instant.strength: extras.get("style_strength"),
            instant.working_size: extras.get("working_size"),
            instant.preserve_colors: extras.get("preserve_colors"),
        }

    settings = [*instant.settings, *diffusion.recorded.values(), *diffusion.prompt.received_outputs]
    tab.results.restore_on_open([tab.mode, *settings], restored)
