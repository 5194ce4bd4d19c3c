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

from pipelines.common import parse_request
from pipelines.diffusion_style import STRUCTURES, DiffusionStyleRequest
from pipelines.instant_style import MAX_MIXED_STYLES, InstantStyleRequest
from studio.presets import Presets
from studio.ui.common import GPU_EVENT, INSTANT_EVENT, readable, slider, user_errors
from studio.ui.grid_actions import GridActions, create_grid_actions, open_image
from studio.ui.widgets import (
    JobRunner,
    PromptControls,
    ResultPanel,
    prompt_box,
    prompt_settings,
    prompt_values,
    result_panel,
    show_first_result,
)

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


def create_tab(
    runner: JobRunner,
    presets: Presets,
    neural_styles: list[tuple[str, Path]],
    structure_preview: Callable[[DiffusionStyleRequest], Image.Image | None],
    default_model: str | None = None,
) -> StyleTransferTab:
    """`neural_styles`: the built-in styles' names and preview files; `structure_preview`: the map a
    request's ControlNet would follow."""
    default_model = default_model or presets.default_model
    style_names = [name for name, _ in neural_styles]

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                image = readable(
                    gr.Image(
                        label="Content image",
                        type="filepath",
                        image_mode=None,
                        format="png",
                        sources=["upload", "clipboard"],
                        height=260,
                        elem_id="style-image",
                    )
                )
                style_image = readable(
                    gr.Image(
                        label="Style image (any painting)",
                        type="pil",
                        image_mode="RGB",
                        sources=["upload", "clipboard"],
                        height=260,
                        elem_id="style-style-image",
                    )
                )
            mode = gr.Radio(choices=MODES, value="instant", label="Mode", elem_id="style-mode")

            with gr.Group(visible=True) as instant_controls:
                style_source = gr.Radio(
                    choices=STYLE_SOURCES, value="builtin", label="Style from", elem_id="style-source"
                )
                previews = gr.Gallery(
                    value=[(str(path), name) for name, path in neural_styles],
                    label="Built-in styles: click to add one (up to three)",
                    columns=7,
                    height=250,
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
                    label="Styles to mix",
                    elem_id="style-neural-styles",
                )
                with gr.Row():
                    weights = [
                        gr.Slider(
                            0,
                            1,
                            value=1.0,
                            step=0.05,
                            label=f"Weight of style {n + 1}",
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
                        label="Strength",
                        info="0 keeps the photo, 1 is the full style",
                        elem_id="style-strength",
                    )
                    working_size = slider(
                        InstantStyleRequest,
                        "working_size",
                        step=64,
                        label="Working size",
                        info="Larger: finer brush strokes; the result keeps the photo's size",
                    )
                preserve_colors = gr.Checkbox(label="Keep the photo's colours", value=False)

            with gr.Group(visible=False) as diffusion_controls:
                with gr.Row():
                    structure = gr.Dropdown(
                        choices=[(label, name) for name, label in STRUCTURES.items()],
                        value="canny",
                        label="Structure held by",
                        elem_id="style-structure",
                    )
                    structure_strength = slider(
                        DiffusionStyleRequest, "structure_strength", step=0.05, label="Structure strength"
                    )
                with gr.Row():
                    style_strength = slider(
                        DiffusionStyleRequest,
                        "style_strength",
                        step=0.05,
                        label="Style image strength",
                        info="How strongly the style image's look is applied (IP-Adapter)",
                    )
                    denoising_strength = slider(
                        DiffusionStyleRequest,
                        "denoising_strength",
                        step=0.05,
                        label="Denoising strength",
                        info="Lower keeps more of the content's colours",
                    )
                with gr.Accordion("Edge thresholds (Canny)", open=False), gr.Row():
                    canny_low = slider(DiffusionStyleRequest, "canny_low", label="Low")
                    canny_high = slider(DiffusionStyleRequest, "canny_high", label="High")
                prompt = prompt_box("style", "Optional: describe the style, e.g. 'ukiyo-e woodblock print'")
                controls = prompt_settings(
                    "style", prompt, presets, default_model, max_images=runner.max_images
                )

            with gr.Row():
                generate = gr.Button("Apply style", variant="primary", elem_id="style-generate", scale=2)
                stop = gr.Button("Stop", variant="stop", elem_id="style-stop", scale=1)
        with gr.Column(scale=3, min_width=360):
            results = result_panel("style")
            actions = create_grid_actions("style", presets, vary=False)
            structure_map = gr.Image(
                label="Structure map (what the ControlNet follows)",
                type="pil",
                format="png",
                interactive=False,
                height=260,
                visible=False,
                elem_id="style-structure-map",
            )

    job = gr.State(None)

    def style_transfer(
        image: str | None,
        mode: str = "instant",
        style_image: Image.Image | None = None,
        style_source: str = "builtin",
        neural_styles: list[str] | None = None,
        weight_1: float = 1.0,
        weight_2: float = 1.0,
        weight_3: float = 1.0,
        strength: float = 1.0,
        working_size: int = 1024,
        preserve_colors: bool = False,
        structure: str = "canny",
        structure_strength: float = 0.8,
        style_strength: float = 0.8,
        denoising_strength: float = 0.9,
        canny_low: int = 100,
        canny_high: int = 200,
        prompt: str = "",
        negative_prompt: str = "",
        styles: list[str] | None = None,
        model: str | None = None,
        num_images: int = 1,
        seed: int = -1,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ):
        """Restyle an image. Returns the PNGs (parameters embedded) and their parameters.

        Args:
            image: the content image.
            mode: "instant" (neural style, offline, fast on a CPU) or "diffusion" (ControlNet + IP-Adapter).
            style_image: a painting whose style to use (instant with style_source "image", or diffusion).
            style_source: instant mode: "builtin" (neural_styles) or "image" (the style image).
            neural_styles: instant mode: up to three built-in style names, mixed by weight_1..weight_3.
            weight_1: weight of the first built-in style (0-1).
            weight_2: weight of the second.
            weight_3: weight of the third.
            strength: instant mode: 0 keeps the photo, 1 is the full style.
            working_size: instant mode: longer side the network works at (the result keeps the photo's size).
            preserve_colors: instant mode: keep the photo's colours.
            structure: diffusion mode: canny, softedge, lineart, depth or none.
            structure_strength: diffusion mode: ControlNet conditioning scale (0-2).
            style_strength: diffusion mode: how strongly the style image applies (0-1.5).
            denoising_strength: diffusion mode: how far to move from the content (0.05-1).
            canny_low: diffusion mode: Canny low threshold.
            canny_high: diffusion mode: Canny high threshold.
            prompt: diffusion mode: describes the style or the picture (optional with a style image).
            negative_prompt: diffusion mode: what to keep out.
            styles: diffusion mode: style preset names, stacked in order.
            model: diffusion mode: model preset name, hub id, local folder or .safetensors path.
            num_images: diffusion mode: 1 to 4; image i uses seed + i.
            seed: diffusion mode: -1 for random.
            steps: diffusion mode: denoising steps before strength; left out, the model preset's.
            guidance_scale: diffusion mode: classifier-free guidance; left out, the model preset's.
            sampler: diffusion mode: sampler name; left out, the model preset's.
        """
        content = open_image(image) if image else None
        if mode == "instant":
            chosen = list(neural_styles or [])
            values = {
                "image": content,
                "styles": tuple(chosen),
                "style_weights": tuple(float(w) for w in (weight_1, weight_2, weight_3)[: len(chosen)]),
                "style_image": style_image if style_source == "image" else None,
                "strength": float(strength),
                "working_size": int(working_size),
                "preserve_colors": bool(preserve_colors),
            }
            if style_source == "image" and style_image is None:
                raise gr.Error("Add a style image, or choose built-in styles.", print_exception=False)
            yield from runner.run("style_instant", values, request, progress)
            return
        values = prompt_values(
            prompt, negative_prompt, styles, model, num_images, seed, steps, guidance_scale, sampler
        )
        values.update(
            image=content,
            style_image=style_image,
            structure=structure,
            structure_strength=float(structure_strength),
            style_strength=float(style_strength),
            denoising_strength=float(denoising_strength),
            canny_low=int(canny_low),
            canny_high=int(canny_high),
        )
        yield from runner.run("style_diffusion", values, request, progress)

    c = controls
    inputs = [image, mode, style_image, style_source, neural_style_names, *weights, strength, working_size]
    inputs += [preserve_colors, structure, structure_strength, style_strength, denoising_strength]
    inputs += [canny_low, canny_high, *c.inputs()]
    outputs = [results.gallery, results.parameters, job]
    event = generate.click(style_transfer, inputs, outputs, api_name="style_transfer", **GPU_EVENT)
    show_first_result(results, event)
    runner.stop_button(stop, [event])

    # -- the controls follow the mode and the chosen styles ---------------------------------------------

    def show_mode(chosen_mode: str):
        diffusion = chosen_mode == "diffusion"
        return gr.Group(visible=not diffusion), gr.Group(visible=diffusion), gr.Image(visible=diffusion)

    mode.change(show_mode, [mode], [instant_controls, diffusion_controls, structure_map], **INSTANT_EVENT)

    def label_weights(chosen: list[str] | None):
        chosen = list(chosen or [])
        return [
            gr.Slider(visible=n < len(chosen), label=f"Weight of {chosen[n]}" if n < len(chosen) else None)
            for n in range(MAX_MIXED_STYLES)
        ]

    neural_style_names.change(label_weights, [neural_style_names], weights, **INSTANT_EVENT)

    def add_style(chosen: list[str] | None, event: gr.SelectData):
        chosen = list(chosen or [])
        picked = style_names[event.index]
        if picked not in chosen:
            chosen = [*chosen[: MAX_MIXED_STYLES - 1], picked]  # a full mix swaps its last style
        return chosen, "builtin"

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
            return structure_preview(parse_request(DiffusionStyleRequest, values))

    preview_inputs = [image, mode, structure, canny_low, canny_high]
    for trigger in (image.change, mode.change, structure.change, canny_low.release, canny_high.release):
        trigger(preview_structure, preview_inputs, [structure_map], **PREVIEW_EVENT)
    return StyleTransferTab(image, controls, results, actions)
