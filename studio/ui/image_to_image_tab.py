"""The Image to Image tab: re-imagine an image, vary it, repaint a painted region, zoom out or pan.

The three modes share the prompt controls and the result grid. Dropping one of our PNGs (or another
studio's) fills the prompt from the parameters it carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.image_to_image import ImageToImageRequest, variation_request
from pipelines.inpaint import InpaintRequest
from pipelines.outpaint import DIRECTION_LABELS
from studio.metadata import GenerationParameters, read_parameters
from studio.presets import Presets
from studio.ui.common import GPU_EVENT, INSTANT_EVENT, readable, slider
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
    editor: gr.ImageEditor
    outpaint_image: gr.Image
    controls: PromptControls
    results: ResultPanel
    actions: GridActions


def input_image(elem_id: str, label: str) -> gr.Image:
    return readable(
        gr.Image(
            label=label,
            type="filepath",  # the uploaded file itself, so a PNG's parameters stay readable
            image_mode=None,
            format="png",
            sources=["upload", "clipboard"],
            height=320,
            elem_id=elem_id,
        )
    )


def create_tab(runner: JobRunner, presets: Presets, default_model: str | None = None) -> ImageToImageTab:
    default_model = default_model or presets.default_model

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            with gr.Tabs():
                with gr.Tab("Re-imagine", id="reimagine"):
                    image = input_image("img2img-image", "Input image")
                    strength = slider(
                        ImageToImageRequest,
                        "strength",
                        step=0.05,
                        label="Strength",
                        info="How far to move from the input: 0 keeps it, 1 ignores it",
                        elem_id="img2img-strength",
                    )
                    generate = gr.Button("Generate", variant="primary", elem_id="img2img-generate")
                    with gr.Row():
                        variation = gr.Radio(
                            choices=list(presets.variations),
                            value=next(iter(presets.variations)),
                            label="Variation",
                            scale=2,
                        )
                        vary = gr.Button("Vary this image", elem_id="img2img-vary", scale=1)
                with gr.Tab("Inpaint", id="inpaint"):
                    editor = readable(
                        gr.ImageEditor(
                            label="Paint over what to repaint",
                            type="pil",
                            image_mode="RGB",
                            sources=["upload", "clipboard"],
                            layers=False,
                            transforms=(),
                            brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=40),
                            eraser=gr.Eraser(default_size=40),
                            height=420,
                            elem_id="inpaint-editor",
                        )
                    )
                    with gr.Row():
                        inpaint_strength = slider(InpaintRequest, "strength", step=0.05, label="Strength")
                        mask_blur = slider(InpaintRequest, "mask_blur", label="Soft edge (px)")
                    inpaint = gr.Button("Repaint region", variant="primary", elem_id="inpaint-generate")
                with gr.Tab("Zoom out / Pan", id="outpaint"):
                    outpaint_image = input_image("outpaint-image", "Image to extend")
                    direction = gr.Radio(
                        choices=[(label, name) for name, label in DIRECTION_LABELS.items()],
                        value="zoom_out_1.5",
                        label="Extend",
                        elem_id="outpaint-direction",
                    )
                    extend = gr.Button("Extend canvas", variant="primary", elem_id="outpaint-generate")
            prompt = prompt_box("img2img", "Optional: what the image should become")
            with gr.Row():
                reroll = gr.Button("Reroll", elem_id="img2img-reroll")
                stop = gr.Button("Stop", variant="stop", elem_id="img2img-stop")
            controls = prompt_settings(
                "img2img", prompt, presets, default_model, max_images=runner.max_images
            )
        with gr.Column(scale=3, min_width=360):
            results = result_panel("img2img")
            actions = create_grid_actions("img2img", presets)

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
            model: model preset name, hub id, local folder or .safetensors path; left out: --model.
            num_images: 1 to 4; image i uses seed + i.
            seed: -1 for random.
            steps: denoising steps before strength; left out, the model preset's.
            guidance_scale: classifier-free guidance; left out, the model preset's.
            sampler: sampler name; left out, the model preset's.
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

    def inpaint_region(
        image_and_mask: dict | None,
        prompt: str = "",
        negative_prompt: str = "",
        styles: list[str] | None = None,
        model: str | None = None,
        num_images: int = 1,
        seed: int = -1,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        strength: float = 1.0,
        mask_blur: int = 8,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ):
        """Repaint only the painted part of an image (Vary Region); pixels away from it stay exactly.

        Args:
            image_and_mask: {"background": image, "layers": [mask]}; painted (opaque) mask pixels repaint.
            prompt: what to paint there.
            negative_prompt: what to keep out.
            styles: style preset names, stacked in order.
            model: model preset name, hub id, local folder or .safetensors path; left out: --model.
            num_images: 1 to 4; image i uses seed + i.
            seed: -1 for random.
            steps: denoising steps; left out, the model preset's.
            guidance_scale: classifier-free guidance; left out, the model preset's.
            sampler: sampler name; left out, the model preset's.
            strength: 1 repaints from scratch; lower keeps the old colours.
            mask_blur: pixels of soft edge around the painted area.
        """
        image_and_mask = image_and_mask or {}
        layers = image_and_mask.get("layers") or []
        values = prompt_values(
            prompt, negative_prompt, styles, model, num_images, seed, steps, guidance_scale, sampler
        )
        values.update(
            image=image_and_mask.get("background"),
            mask=layers[0] if layers else None,
            strength=strength,
            mask_blur=int(mask_blur),
        )
        yield from runner.run("inpaint", values, request, progress)

    def outpaint(
        image: str | None,
        direction: str = "zoom_out_1.5",
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
        """Zoom out or pan: extend the canvas and paint the new border; the original pixels are kept.

        Args:
            image: the image to extend.
            direction: zoom_out_1.5, zoom_out_2, pan_left, pan_right, pan_up or pan_down.
            prompt: what the wider scene shows (optional).
            negative_prompt: what to keep out.
            styles: style preset names, stacked in order.
            model: model preset name, hub id, local folder or .safetensors path; left out: --model.
            num_images: 1 to 4; image i uses seed + i.
            seed: -1 for random.
            steps: denoising steps; left out, the model preset's.
            guidance_scale: classifier-free guidance; left out, the model preset's.
            sampler: sampler name; left out, the model preset's.
        """
        values = prompt_values(
            prompt, negative_prompt, styles, model, num_images, seed, steps, guidance_scale, sampler
        )
        values.update(image=open_image(image) if image else None, direction=direction)
        yield from runner.run("outpaint", values, request, progress)

    c = controls
    shared = [c.prompt, c.negative_prompt, c.styles, c.model, c.num_images, c.seed, c.steps, c.guidance_scale]
    shared += [c.sampler]
    outputs = [results.gallery, results.parameters, job]
    events = [
        generate.click(img2img, [image, *shared, strength], outputs, api_name="img2img", **GPU_EVENT),
        vary.click(
            vary_image,
            [image, variation, c.prompt, c.num_images, c.seed],
            outputs,
            api_name="vary",
            **GPU_EVENT,
        ),
        inpaint.click(
            inpaint_region,
            [editor, *shared, inpaint_strength, mask_blur],
            outputs,
            api_name="inpaint",
            **GPU_EVENT,
        ),
        extend.click(
            outpaint, [outpaint_image, direction, *shared], outputs, api_name="outpaint", **GPU_EVENT
        ),
        reroll.click(runner.reroll, [job], outputs, api_visibility="private", **GPU_EVENT),
    ]
    events += wire_vary(actions, results, job, runner, presets, controls.num_images)
    show_first_result(results, *events)
    runner.stop_button(stop, events)

    def fill_from_image(path: str | None):
        """An image that carries parameters fills the prompt fields; every mode gets the same image."""
        try:
            carried = read_parameters(path) if path else None
        except OSError:  # not an image PIL can open; the run itself will say so
            carried = None
        if isinstance(carried, GenerationParameters):
            fields = (
                carried.user_prompt or carried.prompt,
                carried.user_negative_prompt,
                list(carried.styles),
            )
        elif isinstance(carried, dict):
            fields = (carried.get("prompt", ""), carried.get("negative_prompt", ""), gr.skip())
        else:
            fields = (gr.skip(), gr.skip(), gr.skip())
        return (*fields, path or gr.skip(), path or gr.skip())

    image.upload(
        fill_from_image,
        [image],
        [c.prompt, c.negative_prompt, c.styles, editor, outpaint_image],
        **INSTANT_EVENT,
    )
    return ImageToImageTab(image, editor, outpaint_image, controls, results, actions)
