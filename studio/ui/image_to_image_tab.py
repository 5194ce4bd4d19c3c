"""The Image to Image tab: an input image re-imagined with a prompt, and Vary on that image.

Dropping one of our PNGs (or another studio's) fills the prompt from the parameters it carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.image_to_image import ImageToImageRequest, variation_request
from studio.metadata import GenerationParameters, read_parameters
from studio.presets import Presets
from studio.ui.common import GPU_EVENT, INSTANT_EVENT, slider
from studio.ui.grid_actions import GridActions, create_grid_actions, open_image, wire_vary
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


@dataclass
class ImageToImageTab:
    image: gr.Image
    controls: PromptControls
    strength: gr.Slider
    results: ResultPanel
    actions: GridActions


def create_tab(runner: JobRunner, presets: Presets, default_model: str | None = None) -> ImageToImageTab:
    default_model = default_model or presets.default_model

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            image = gr.Image(
                label="Input image",
                type="filepath",  # the uploaded file itself, so the PNG's parameters stay readable
                image_mode=None,
                format="png",
                sources=["upload", "clipboard"],
                height=320,
                elem_id="img2img-image",
            )
            prompt = prompt_box("img2img", "Optional: what the image should become")
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="img2img-generate", scale=2)
                reroll = gr.Button("🔄 Reroll", elem_id="img2img-reroll", scale=1)
                stop = gr.Button("⏹ Stop", variant="stop", elem_id="img2img-stop", scale=1)
            strength = slider(
                ImageToImageRequest,
                "strength",
                step=0.05,
                label="Strength",
                info="How far to move from the input: 0 keeps it, 1 ignores it",
                elem_id="img2img-strength",
            )
            with gr.Row():
                variation = gr.Radio(
                    choices=list(presets.variations),
                    value=next(iter(presets.variations)),
                    label="Variation",
                    scale=2,
                )
                vary = gr.Button("Vary this image", elem_id="img2img-vary", scale=1)
            controls = prompt_settings("img2img", prompt, presets, default_model)
        with gr.Column(scale=3, min_width=360):
            results = result_panel("img2img")
            actions = create_grid_actions("img2img", presets, exclude=("img2img",))

    job = gr.State(None)

    def img2img(
        image: str | None,
        prompt: str = "",
        negative_prompt: str = "",
        styles: list[str] | None = None,
        model: str | None = None,
        num_images: int = 1,
        seed: int = -1,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        strength: float = 0.6,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ):
        """Re-imagine an image with a prompt. Returns the PNGs (parameters embedded) and their parameters.

        Args:
            image: the input image.
            prompt: what the image should become (optional).
            negative_prompt: what to keep out.
            styles: style preset names, stacked in order.
            model: model preset name, hub id, local folder or .safetensors path; empty for the default.
            num_images: 1 to 4; image i uses seed + i.
            seed: -1 for random.
            steps: denoising steps before strength; empty for the model preset's.
            guidance_scale: classifier-free guidance; empty for the model preset's.
            sampler: sampler name; empty for the model preset's.
            strength: 0 returns the input unchanged, 1 ignores it.
        """
        values = prompt_values(
            prompt, negative_prompt, styles, model, num_images, seed, steps, guidance_scale, sampler
        )
        values.update(image=open_image(image) if image else None, strength=strength)
        yield from runner.run("img2img", values, request, progress)

    def vary_image(
        image: str | None,
        variation: str = "Subtle",
        prompt: str = "",
        num_images: int = 4,
        seed: int = -1,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ):
        """Variations of an image, Midjourney's Vary: the image's own prompt and settings, a new seed.

        Args:
            image: the image to vary; our PNGs and other studios' bring their parameters along.
            variation: "Subtle" or "Strong".
            prompt: replaces the image's own prompt when given.
            num_images: 1 to 4.
            seed: -1 for random.
        """
        if not image:
            raise gr.Error("Add an image to vary first.", print_exception=False)
        strength = presets.variation(variation).strength
        values = variation_request(
            open_image(image), strength, prompt=prompt, num_images=int(num_images), seed=int(seed)
        )
        yield from runner.run("img2img", values, request, progress)

    c = controls
    inputs = [image, c.prompt, c.negative_prompt, c.styles, c.model, c.num_images, c.seed, c.steps]
    inputs += [c.guidance_scale, c.sampler, strength]
    vary_inputs = [image, variation, c.prompt, c.num_images, c.seed]
    outputs = [results.gallery, results.parameters, job]
    events = [
        generate.click(img2img, inputs, outputs, api_name="img2img", **GPU_EVENT),
        vary.click(vary_image, vary_inputs, outputs, api_name="vary", **GPU_EVENT),
        reroll.click(runner.reroll, [job], outputs, api_visibility="private", **GPU_EVENT),
    ]
    events += wire_vary(actions, results, job, runner, presets, controls.num_images)
    show_first_result(results, *events)
    runner.stop_button(stop, events)

    def fill_from_image(path: str | None):
        """A dropped image that carries parameters fills the prompt fields it can."""
        try:
            carried = read_parameters(path) if path else None
        except OSError:  # not an image PIL can open; the run itself will say so
            carried = None
        if isinstance(carried, GenerationParameters):
            return carried.user_prompt or carried.prompt, carried.user_negative_prompt, list(carried.styles)
        if isinstance(carried, dict):
            return carried.get("prompt", ""), carried.get("negative_prompt", ""), gr.skip()
        return gr.skip(), gr.skip(), gr.skip()

    image.upload(fill_from_image, [image], [c.prompt, c.negative_prompt, c.styles], **INSTANT_EVENT)
    return ImageToImageTab(image, controls, strength, results, actions)
