"""The Style Transfer tab: instant neural style (offline, CPU) or diffusion style transfer (ControlNet +
IP-Adapter on the cached base model).

One content image and one optional style image serve both modes. Instant mode mixes up to three built-in
styles, picked from their previews, or takes the style image as the style; diffusion mode holds the content's
structure with a ControlNet (its map shown as a preview) and takes the style from the style image, style
presets and the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from PIL import Image

from pipelines.diffusion_style import STRUCTURES, DiffusionStyleRequest
from pipelines.instant_style import MAX_MIXED_STYLES, InstantStyleRequest
from studio.core.requests import parse_request
from studio.ui.common import INSTANT_EVENT, readable, slider, user_errors
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import REQUIRED, Endpoint, Parameter, control, field, present
from studio.ui.grid_actions import GridActions, create_grid_actions, open_image
from studio.ui.i18n import say, tr
from studio.ui.runner import Job
from studio.ui.send_to import Sent
from studio.ui.widgets import PromptControls, ResultPanel, prompt_box, prompt_settings

TAB = TabInfo("style", "Style Transfer", takes_images=True)
MODES = [
    ("Instant (neural style, fast on CPU)", "instant"),
    ("Diffusion (keeps structure, any style)", "diffusion"),
]
STYLE_SOURCES = [("Built-in styles", "builtin"), ("The style image", "image")]
# Cheap previews may run beside a GPU job: the structure map takes the GPU lock itself.
PREVIEW_EVENT = {"concurrency_id": "preview", "concurrency_limit": 2, "api_visibility": "private"}


@dataclass
class StyleTransferTab:
    image: gr.Image
    controls: PromptControls
    results: ResultPanel
    actions: GridActions


def create_tab(studio: Studio) -> StyleTransferTab:
    max_side = studio.settings.max_image_side
    instant_style = studio.pipeline("style_instant")
    diffusion_style = studio.pipeline("style_diffusion")
    style_names = instant_style.style_names()
    neural_styles = [(name, instant_style.preview_path(name)) for name in style_names]

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

            with gr.Group(visible=True) as instant_controls:
                style_source = gr.Radio(
                    choices=STYLE_SOURCES, value="builtin", label=tr("Style from"), elem_id="style-source"
                )
                previews = gr.Gallery(
                    value=[(str(path), name) for name, path in neural_styles],
                    label=tr("Built-in styles: click to add one (up to three)"),
                    columns=4,
                    height=360,
                    allow_preview=False,
                    object_fit="cover",
                    buttons=[],
                    interactive=False,
                    elem_id="style-previews",
                )
                neural_style_names = gr.Dropdown(
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

            with gr.Group(visible=False) as diffusion_controls:
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
                controls = prompt_settings("style", prompt, studio, loras=diffusion_style.loras)

            with gr.Row():
                generate = gr.Button(tr("Apply style"), variant="primary", elem_id="style-generate", scale=2)
                stop = gr.Button(tr("Stop"), variant="stop", elem_id="style-stop", scale=1)
        with gr.Column(scale=3, min_width=360):
            results = ResultPanel("style", studio)
            actions = create_grid_actions("style", studio, results, controls, vary=False)
            structure_map = gr.Image(
                label=tr("Structure map (what the ControlNet follows)"),
                type="pil",
                format="png",
                interactive=False,
                height=260,
                visible=False,
                elem_id="style-structure-map",
            )

    def style_transfer(values: dict, request: gr.Request, progress: gr.Progress):
        for name, choices in (("mode", MODES), ("style_source", STYLE_SOURCES)):
            if values[name] not in [value for _, value in choices]:
                known = " or ".join(f'"{value}"' for _, value in choices)
                raise gr.Error(say(f"{name} must be {known} (got {values[name]!r})."), print_exception=False)
        content = open_image(values["image"]) if values["image"] else None
        if values["mode"] == "instant":
            chosen = list(values["neural_styles"] or [])
            weights = [values[f"weight_{n + 1}"] for n in range(MAX_MIXED_STYLES)]
            by_image = values["style_source"] == "image"
            if by_image and values["style_image"] is None:
                raise gr.Error(say("Add a style image, or choose built-in styles."), print_exception=False)
            job = Job(
                "style_instant",
                present(
                    {
                        "image": content,
                        "styles": tuple(chosen),
                        "style_weights": tuple(float(w) for w in weights[: len(chosen)]),
                        "style_image": values["style_image"] if by_image else None,
                        **{name: values[name] for name in ("strength", "working_size", "preserve_colors")},
                    }
                ),
            )
        else:
            diffusion_fields = [p.name for p in diffusion_parameters]
            job = Job(
                "style_diffusion",
                present({name: values[name] for name in diffusion_fields} | {"image": content}),
            )
        yield from results.run(job, request, progress)

    def diffusion(name: str, component: gr.components.Component, doc: str) -> Parameter:
        return field(DiffusionStyleRequest, name, component, f"diffusion mode: {doc}")

    def instant(
        name: str, component: gr.components.Component, doc: str, annotation: object = None
    ) -> Parameter:
        if annotation is not None:  # a page control with no request field of its own
            return control(name, component, annotation, f"instant mode: {doc}")
        return field(InstantStyleRequest, name, component, f"instant mode: {doc}")

    style_image_parameter = field(
        DiffusionStyleRequest,
        "style_image",
        style_image,
        'a painting whose style to use (instant mode with style_source "image", or diffusion mode).',
        annotation=Image.Image | None,
    )
    diffusion_parameters = [
        style_image_parameter,
        diffusion("structure", structure, "canny, softedge, lineart, depth or none."),
        diffusion("structure_strength", structure_strength, "ControlNet conditioning scale."),
        diffusion("style_strength", style_strength, "how strongly the style image applies."),
        diffusion("denoising_strength", denoising_strength, "how far to move from the content."),
        diffusion("canny_low", canny_low, "Canny low threshold."),
        diffusion("canny_high", canny_high, "Canny high threshold."),
        *controls.parameters(
            "describes the style or the picture (optional with a style image).", mode="diffusion"
        ),
    ]
    diffusion_parameters += [p.described(f"diffusion mode: {p.doc}") for p in controls.later_parameters()]
    weight_parameters = [
        instant(
            f"weight_{n + 1}",
            weight,
            f"weight of built-in style {n + 1} (0-1).",
            annotation=float,
        )
        for n, weight in enumerate(weights)
    ]
    mode_doc = '"instant" (neural style, offline, fast on a CPU) or "diffusion" (ControlNet + IP-Adapter).'
    endpoint = Endpoint(
        "style_transfer",
        "Restyle an image. Returns the PNGs (parameters embedded) and their parameters.",
        [
            Parameter("image", image, str | None, REQUIRED, "the content image."),
            control("mode", mode, str, mode_doc),
            style_image_parameter,
            instant(
                "style_source",
                style_source,
                '"builtin" (neural_styles) or "image" (the style image).',
                annotation=str,
            ),
            instant(
                "neural_styles",
                neural_style_names,
                "up to three built-in style names, mixed by weight_1..weight_3.",
                annotation=list[str] | None,
            ),
            *weight_parameters,
            instant("strength", strength, "0 keeps the photo, 1 is the full style."),
            instant(
                "working_size", working_size, "longer side the network works at (the result keeps its size)."
            ),
            instant("preserve_colors", preserve_colors, "keep the photo's colours."),
            *diffusion_parameters[1:],
        ],
        style_transfer,
    )
    # --iw weighs the style image (an image prompt) against the text
    event = controls.read_prompt_first(
        generate.click, diffusion_style, {"style_strength": style_strength}
    ).success(endpoint.fn, endpoint.inputs, results.outputs, api_name=endpoint.name, **results.event_options)
    results.connect([event], stop)

    # -- the controls follow the mode and the chosen styles ---------------------------------------------

    def show_mode(chosen_mode: str):
        diffusion = chosen_mode == "diffusion"
        return gr.Group(visible=not diffusion), gr.Group(visible=diffusion), gr.Image(visible=diffusion)

    mode.change(show_mode, [mode], [instant_controls, diffusion_controls, structure_map], **INSTANT_EVENT)

    def label_weights(chosen: list[str] | None):
        chosen = list(chosen or [])
        return [
            gr.Slider(
                visible=n < len(chosen), label=say(f"Weight of {chosen[n]}") if n < len(chosen) else None
            )
            for n in range(MAX_MIXED_STYLES)
        ]

    neural_style_names.change(label_weights, [neural_style_names], weights, **INSTANT_EVENT)

    def add_style(chosen: list[str] | None, event: gr.SelectData):
        chosen = list(chosen or [])
        picked = style_names[event.index]
        if picked not in chosen and len(chosen) >= MAX_MIXED_STYLES:
            gr.Warning(
                say(f"Up to {MAX_MIXED_STYLES} styles mix: remove one from Styles to mix to add {picked}.")
            )
            return gr.skip(), "builtin"
        return (chosen if picked in chosen else [*chosen, picked]), "builtin"

    previews.select(add_style, [neural_style_names], [neural_style_names, style_source], **INSTANT_EVENT)
    style_image.upload(lambda: "image", None, [style_source], **INSTANT_EVENT)

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

    preview_inputs = [image, mode, structure, canny_low, canny_high]
    for trigger in (image.change, mode.change, structure.change, canny_low.release, canny_high.release):
        trigger(preview_structure, preview_inputs, [structure_map], **PREVIEW_EVENT)

    studio.send_to.receive(TAB.id, [image, controls.prompt], lambda sent: (sent.path, sent.prompt))

    # A page opened from a link gets the settings of its grid back (the content and style images are not
    # recorded): the mode's own controls; the other mode's stay as they are.
    instant_settings = [style_source, neural_style_names, *weights, strength, working_size, preserve_colors]
    diffusion_settings = [
        structure,
        structure_strength,
        style_strength,
        denoising_strength,
        canny_low,
        canny_high,
    ]
    diffusion_settings += controls.received_outputs

    def restored(values: dict) -> tuple:
        extras = values.get("extras") or {}
        mode_recorded = extras.get("mode") if values.get("task") == "style_transfer" else None
        unchanged_instant = [gr.skip()] * len(instant_settings)
        unchanged_diffusion = [gr.skip()] * len(diffusion_settings)
        if mode_recorded == "instant":
            return ("instant", *instant_values(extras), *unchanged_diffusion)
        if mode_recorded == "diffusion":
            received = controls.received(Sent.of(None, values), studio.presets)
            return ("diffusion", *unchanged_instant, *diffusion_values(extras), *received)
        return (gr.skip(), *unchanged_instant, *unchanged_diffusion)

    def instant_values(extras: dict) -> list:
        mixed = zip(extras.get("neural_styles", []), extras.get("style_weights", []), strict=False)
        chosen = [(name, weight) for name, weight in mixed if name in style_names]
        unused_weights = [gr.skip()] * (MAX_MIXED_STYLES - len(chosen))
        return [
            "image" if "style_image" in extras else "builtin",
            [name for name, _ in chosen] if chosen else gr.skip(),
            *(weight for _, weight in chosen),
            *unused_weights,
            *recorded(extras, "style_strength", "working_size", "preserve_colors"),
        ]

    def diffusion_values(extras: dict) -> list:
        names = ("structure", "structure_strength", "style_strength", "denoising_strength")
        return recorded(extras, *names, "canny_low", "canny_high")

    results.restore_on_open([mode, *instant_settings, *diffusion_settings], restored)
    return StyleTransferTab(image, controls, results, actions)


def recorded(extras: dict, *names: str) -> list:
    """The values `extras` recorded under `names`; what it did not record stays as it is on the page."""
    return [extras.get(name, gr.skip()) for name in names]
