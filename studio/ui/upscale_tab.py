"""The Upscale tab: super-resolution (fast) or super-resolution plus a diffusion detail pass (creative)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.upscale import DEFAULT_UPSCALER, UpscaleRequest
from studio.presets import Presets
from studio.ui.common import GPU_EVENT, describe_parameters, readable, slider
from studio.ui.grid_actions import open_image
from studio.ui.widgets import JobRunner, PromptControls, prompt_box, prompt_settings, prompt_values


@dataclass
class UpscaleTab:
    image: gr.Image
    controls: PromptControls


def create_tab(
    runner: JobRunner, presets: Presets, upscaler_names: list[str], default_model: str | None = None
) -> UpscaleTab:
    default_model = default_model or presets.default_model
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            image = readable(
                gr.Image(
                    label="Image to enlarge",
                    type="filepath",
                    image_mode=None,  # the uploaded file itself, so its parameters carry over
                    format="png",
                    sources=["upload", "clipboard"],
                    height=300,
                    elem_id="upscale-image",
                )
            )
            upscaler = gr.Dropdown(
                choices=upscaler_names,
                value=DEFAULT_UPSCALER if DEFAULT_UPSCALER in upscaler_names else upscaler_names[-1],
                allow_custom_value=True,  # weights added to the folder later work without a restart
                label="Upscaler",
                info="x4plus for photos, anime models for drawings; .pth names download official weights "
                "on first use; your own weights go in the upscalers folder",
                elem_id="upscale-upscaler",
            )
            with gr.Row():
                scale = gr.Radio(choices=[2, 3, 4, 8], value=4, label="Scale", elem_id="upscale-scale")
                mode = gr.Radio(
                    choices=[("Fast", "fast"), ("Creative (adds detail)", "creative")],
                    value="fast",
                    label="Mode",
                    elem_id="upscale-mode",
                )
            with gr.Accordion("Exact size and tiles", open=False):
                with gr.Row():
                    target_width = gr.Number(value=0, precision=0, label="Width (0: from scale)", minimum=0)
                    target_height = gr.Number(value=0, precision=0, label="Height (0: from scale)", minimum=0)
                tile_size = slider(
                    UpscaleRequest,
                    "tile_size",
                    step=32,
                    label="Tile size",
                    info="Smaller tiles use less memory; the result is the same",
                )
            with gr.Row():
                upscale = gr.Button("Upscale", variant="primary", elem_id="upscale-generate", scale=2)
                stop = gr.Button("Stop", variant="stop", elem_id="upscale-stop", scale=1)
            with gr.Accordion("Creative pass", open=False):
                creative_strength = slider(
                    UpscaleRequest,
                    "creative_strength",
                    step=0.05,
                    label="Detail strength",
                    info="How much the diffusion pass may change: 0.2-0.4 adds detail, more repaints",
                )
                prompt = prompt_box("upscale", "Optional: describe the image to guide the added detail")
                controls = prompt_settings("upscale", prompt, presets, default_model, image_count=False)
        with gr.Column(scale=3, min_width=360):
            comparison = gr.ImageSlider(
                label="Before / after", type="filepath", format="png", height=520, elem_id="upscale-slider"
            )
            result_file = gr.File(label="Result (lossless PNG with parameters)", elem_id="upscale-file")
            parameters_text = gr.Textbox(
                label="Parameters", lines=3, interactive=False, elem_id="upscale-parameters"
            )

    def upscale_image(
        image: str | None,
        upscaler: str = DEFAULT_UPSCALER,
        scale: float = 4,
        target_width: int = 0,
        target_height: int = 0,
        mode: str = "fast",
        tile_size: int = 256,
        creative_strength: float = 0.3,
        prompt: str = "",
        negative_prompt: str = "",
        styles: list[str] | None = None,
        model: str | None = None,
        seed: int = -1,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ):
        """Enlarge an image. Returns (before, after), the lossless PNG, and its parameters.

        Args:
            image: the image to enlarge (up to 2048 px on the longer side).
            upscaler: an upscaler name (see the dropdown), or "Lanczos (no model)".
            scale: 2, 3, 4 or 8; ignored when a target size is given.
            target_width: exact width, or 0.
            target_height: exact height, or 0 (one of the two keeps the aspect ratio).
            mode: "fast" (super-resolution) or "creative" (plus a low-strength diffusion pass in tiles).
            tile_size: input pixels per super-resolution tile; memory follows it, not the image.
            creative_strength: how much the creative pass may change.
            prompt: guides the creative pass (optional).
            negative_prompt: for the creative pass.
            styles: style preset names for the creative pass.
            model: model for the creative pass; left out, the default (--model).
            seed: creative pass seed; -1 for random.
            steps: creative pass steps; left out, the model preset's.
            guidance_scale: creative pass guidance; left out, the model preset's.
            sampler: creative pass sampler; left out, the model preset's.
        """
        values = prompt_values(
            prompt, negative_prompt, styles, model, 1, seed, steps, guidance_scale, sampler
        )
        values.update(
            image=open_image(image) if image else None,
            upscaler=upscaler,
            scale=float(scale or 4),
            target_width=int(target_width or 0),
            target_height=int(target_height or 0),
            mode=mode,
            tile_size=int(tile_size),
            creative_strength=float(creative_strength),
        )
        outputs = None
        for items, params, _job in runner.run("upscale", values, request, progress):
            if items:
                path = items[-1][0]
                outputs = (image, path), path, describe_parameters(params[-1])
        if outputs is None:  # stopped before the result was made
            raise gr.Error("Stopped before the upscale finished.", print_exception=False)
        return outputs

    c = controls
    inputs = [image, upscaler, scale, target_width, target_height, mode, tile_size, creative_strength]
    inputs += [c.prompt, c.negative_prompt, c.styles, c.model, c.seed, c.steps, c.guidance_scale, c.sampler]
    event = upscale.click(
        upscale_image, inputs, [comparison, result_file, parameters_text], api_name="upscale", **GPU_EVENT
    )
    runner.stop_button(stop, [event])
    return UpscaleTab(image, controls)
