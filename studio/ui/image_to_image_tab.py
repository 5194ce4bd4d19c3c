"""The Image to Image tab: re-imagine an image, vary it, repaint a painted region, zoom out or pan.

The three modes share the prompt controls and the result grid. Dropping one of our PNGs (or another
studio's) fills the prompt from the parameters it carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.image_to_image import ImageToImageRequest, variation_request
from pipelines.inpaint import InpaintRequest
from pipelines.outpaint import DIRECTION_LABELS, OutpaintRequest
from studio.core.metadata import GenerationParameters, read_parameters
from studio.ui.common import INSTANT_EVENT, readable, slider, user_errors
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import IMAGE_FILE, REQUIRED, Endpoint, Parameter, control, field, present
from studio.ui.grid_actions import GridActions, create_grid_actions, open_image, wire_enhance, wire_vary
from studio.ui.i18n import say, tr
from studio.ui.runner import Job
from studio.ui.send_to import Sent, Updates, sent_values
from studio.ui.widgets import PromptControls, ResultPanel, prompt_box, prompt_settings

TAB = TabInfo("img2img", "Image to Image", takes_images=True)


@dataclass
class ImageToImageTab:
    image: gr.Image
    editor: gr.ImageEditor
    outpaint_image: gr.Image
    controls: PromptControls
    results: ResultPanel
    actions: GridActions


def input_image(elem_id: str, label: str, max_side: int) -> gr.Image:
    return readable(
        gr.Image(
            label=tr(label),
            type="filepath",  # the uploaded file itself, so a PNG's parameters stay readable
            image_mode=None,
            format="png",
            sources=["upload", "clipboard"],
            height=320,
            elem_id=elem_id,
        ),
        max_side,
    )


def create_tab(studio: Studio) -> ImageToImageTab:
    presets = studio.presets
    max_side = studio.settings.max_image_side
    pipelines = {
        "img2img": studio.pipeline("img2img"),
        "inpaint": studio.pipeline("inpaint"),
        "outpaint": studio.pipeline("outpaint"),
    }

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            # The prompt first: every mode's main button comes after what it will use.
            prompt = prompt_box("img2img", "Optional: what the image should become")
            with gr.Tabs():
                with gr.Tab(tr("Re-imagine"), id="reimagine"):
                    image = input_image("img2img-image", "Input image", max_side)
                    strength = slider(
                        ImageToImageRequest,
                        "strength",
                        step=0.05,
                        label=tr("Strength"),
                        info=tr("How far to move from the input: 0 keeps it, 1 ignores it"),
                        elem_id="img2img-strength",
                    )
                    generate = gr.Button(tr("Generate"), variant="primary", elem_id="img2img-generate")
                    with gr.Row():
                        variation = gr.Radio(
                            choices=list(presets.variations),
                            value=next(iter(presets.variations)),
                            label=tr("Variation"),
                            scale=2,
                        )
                        vary = gr.Button(tr("Vary this image"), elem_id="img2img-vary", scale=1)
                with gr.Tab(tr("Inpaint"), id="inpaint"):
                    editor = readable(
                        gr.ImageEditor(
                            label=tr("Paint over what to repaint"),
                            type="pil",
                            image_mode="RGB",
                            sources=["upload", "clipboard"],
                            layers=False,
                            transforms=(),
                            brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=40),
                            eraser=gr.Eraser(default_size=40),
                            height=420,
                            elem_id="inpaint-editor",
                        ),
                        max_side,
                    )
                    with gr.Row():
                        inpaint_strength = slider(InpaintRequest, "strength", step=0.05, label=tr("Strength"))
                        mask_blur = slider(InpaintRequest, "mask_blur", label=tr("Soft edge (px)"))
                    inpaint = gr.Button(tr("Repaint region"), variant="primary", elem_id="inpaint-generate")
                with gr.Tab(tr("Zoom out / Pan"), id="outpaint"):
                    outpaint_image = input_image("outpaint-image", "Image to extend", max_side)
                    direction = gr.Radio(
                        choices=[(label, name) for name, label in DIRECTION_LABELS.items()],
                        value=OutpaintRequest.default("direction"),
                        label=tr("Extend"),
                        elem_id="outpaint-direction",
                    )
                    extend = gr.Button(tr("Extend canvas"), variant="primary", elem_id="outpaint-generate")
            with gr.Row(elem_classes=["run-buttons"]):
                reroll = gr.Button(tr("Reroll"), elem_id="img2img-reroll", min_width=0)
                stop = gr.Button(tr("Stop"), variant="stop", elem_id="img2img-stop", min_width=0)
            controls = prompt_settings("img2img", prompt, studio, loras=pipelines["img2img"].loras)
        with gr.Column(scale=3, min_width=360):
            results = ResultPanel("img2img", studio, reroll=reroll)
            actions = create_grid_actions("img2img", studio, results, controls)

    def run(task: str, values: dict, request: gr.Request, progress: gr.Progress, action: str = ""):
        job = Job(task, present(values), action)
        yield from results.run(job, request, progress)

    def with_image(task: str, action: str = ""):
        """Run `task` on the image file the API or the page sent, opened with its parameters."""

        def run_on_image(values: dict, request: gr.Request, progress: gr.Progress):
            path = values.pop("image")
            values = {**values, "image": open_image(path) if path else None}
            yield from run(task, values, request, progress, action)

        return run_on_image

    def image_parameter(doc: str, component: gr.components.Component = image) -> Parameter:
        return Parameter("image", component, IMAGE_FILE, REQUIRED, doc)

    steps_doc = "denoising steps before strength; left out, the model preset's."
    reimagine = Endpoint(
        "img2img",
        "Re-imagine an image with a prompt. Returns the PNGs (parameters embedded) and their parameters.",
        [
            image_parameter("the input image."),
            *with_steps_doc(controls.parameters("what the image should become (optional)."), steps_doc),
            field(ImageToImageRequest, "strength", strength, "0 returns the input unchanged, 1 ignores it."),
            *controls.later_parameters(),
        ],
        with_image("img2img"),
    )

    def vary_image(values: dict, request: gr.Request, progress: gr.Progress):
        if not values["image"]:
            raise gr.Error(say("Add an image to vary first."), print_exception=False)
        with user_errors():
            strength = presets.variation(values["variation"]).strength
            chosen = variation_request(open_image(values["image"]), strength, prompt=values["prompt"] or "")
        chosen.update(present({"num_images": values["num_images"], "seed": values["seed"]}))
        yield from run("img2img", chosen, request, progress, f"Vary {values['variation']}")

    variations = ", ".join(f'"{name}"' for name in presets.variations)
    vary_endpoint = Endpoint(
        "vary",
        "Variations of an image, Midjourney's Vary: the image's own prompt and settings, a new seed.",
        [
            image_parameter("the image to vary; our PNGs and other studios' bring their parameters along."),
            control("variation", variation, str, f"{variations}."),
            control("prompt", controls.prompt, str, "replaces the image's own prompt when given."),
            control(
                "num_images", controls.num_images, int, f"{ImageToImageRequest.range_text('num_images')}."
            ),
            control("seed", controls.seed, int, "-1 for a random seed."),
        ],
        vary_image,
    )

    def inpaint_region(values: dict, request: gr.Request, progress: gr.Progress):
        image_and_mask = values.pop("image_and_mask") or {}
        layers = image_and_mask.get("layers") or []
        mask = layers[0] if layers else None
        values = {**values, "image": image_and_mask.get("background"), "mask": mask}
        yield from run("inpaint", values, request, progress, "Inpaint")

    inpaint_endpoint = Endpoint(
        "inpaint",
        "Repaint only the painted part of an image (Vary Region); pixels away from it stay exactly.",
        [
            Parameter(
                "image_and_mask",
                editor,
                dict | None,
                REQUIRED,
                '{"background": image, "layers": [mask]}; painted (opaque) mask pixels repaint.',
            ),
            *controls.parameters("what to paint there."),
            field(
                InpaintRequest,
                "strength",
                inpaint_strength,
                "1 repaints from scratch; lower keeps the old colours.",
            ),
            field(InpaintRequest, "mask_blur", mask_blur, "pixels of soft edge around the painted area."),
            *controls.later_parameters(),
        ],
        inpaint_region,
    )
    directions = ", ".join(DIRECTION_LABELS)
    outpaint_endpoint = Endpoint(
        "outpaint",
        "Zoom out or pan: extend the canvas and paint the new border; the original pixels are kept.",
        [
            image_parameter("the image to extend.", outpaint_image),
            field(OutpaintRequest, "direction", direction, f"one of {directions}."),
            *controls.parameters("what the wider scene shows (optional)."),
            *controls.later_parameters(),
        ],
        with_image("outpaint", "Zoom out / Pan"),
    )
    # --iw is the image's weight: less change for the input image, or the region's old colours
    image_weights = {"img2img": {"strength": strength}, "inpaint": {"strength": inpaint_strength}}

    def read_then_run(button: gr.Button, endpoint: Endpoint):
        task = endpoint.name
        read = controls.read_prompt_first(button.click, pipelines[task], image_weights.get(task))
        options = results.event_options
        return read.success(endpoint.fn, endpoint.inputs, results.outputs, api_name=task, **options)

    runs = ((generate, reimagine), (inpaint, inpaint_endpoint), (extend, outpaint_endpoint))
    events = [read_then_run(button, endpoint) for button, endpoint in runs]
    events.append(
        vary.click(
            vary_endpoint.fn,
            vary_endpoint.inputs,
            results.outputs,
            api_name=vary_endpoint.name,
            **results.event_options,
        )
    )
    events += wire_vary(actions, results, studio, controls.num_images)
    events += wire_enhance(actions, results, studio)
    results.connect(events, stop)

    def fill_from_image(path: str | None):
        """An image that carries parameters fills the prompt fields; every mode gets the same image."""
        try:
            carried = read_parameters(path) if path else None
        except OSError:  # not an image PIL can open; the run itself will say so
            carried = None
        if isinstance(carried, GenerationParameters):
            fields = (
                carried.typed_prompt,
                carried.typed_negative_prompt,
                list(carried.styles),
            )
        elif isinstance(carried, dict):
            fields = (carried.get("prompt", ""), carried.get("negative_prompt", ""), gr.skip())
        else:
            fields = (gr.skip(), gr.skip(), gr.skip())
        return (*fields, path or gr.skip(), path or gr.skip())

    c = controls
    image.upload(
        fill_from_image,
        [image],
        [c.prompt, c.negative_prompt, c.styles, editor, outpaint_image],
        **INSTANT_EVENT,
    )

    def fill(sent: Sent) -> Updates:
        """Every mode gets the image; the prompt fields get what made it; Vary, the variation asked for."""
        path, styles = sent.path, None if sent.styles is None else list(sent.styles)
        images = dict.fromkeys([image, editor, outpaint_image], path)
        prompts = {c.prompt: sent.prompt, c.negative_prompt: sent.negative_prompt, c.styles: styles}
        return sent_values({**images, **prompts, variation: sent.variation})

    fields = [image, editor, outpaint_image, c.prompt, c.negative_prompt, c.styles, variation]
    studio.send_to.receive(TAB.id, fields, fill)
    # A page opened from a link gets the settings of its grid back (the input image is not recorded)
    results.restore_on_open(
        c.received_outputs, lambda values: c.received(Sent.of(None, values), studio.presets)
    )
    studio.send_to.action(
        TAB.id,
        "vary",
        vary_endpoint.fn,
        vary_endpoint.inputs,
        results.outputs,
        after=results.select_first_after,
        **results.event_options,
    )
    return ImageToImageTab(image, editor, outpaint_image, controls, results, actions)


def with_steps_doc(parameters: list[Parameter], doc: str) -> list[Parameter]:
    return [p.described(doc) if p.name == "steps" else p for p in parameters]
