"""The Image to Image tab: re-imagine an image, vary it, repaint a painted region, zoom out or pan, or edit
it by an instruction.

The modes share the prompt controls and the result grid (Edit takes its own, editing model). Dropping one
of our PNGs (or another studio's) fills the prompt from the parameters it carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from pipelines.edit import MAX_EDIT_PICTURES
from pipelines.image_to_image import ImageToImageRequest, variation_request
from pipelines.inpaint import InpaintRequest
from pipelines.outpaint import DIRECTION_LABELS, OutpaintRequest
from pipelines.parts.loras import Loras
from pipelines.task import Task
from studio.core.metadata import GenerationParameters, read_parameters
from studio.core.presets import Presets
from studio.ui.common import INSTANT_EVENT, readable, slider, user_errors
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import IMAGE_FILE, REQUIRED, Endpoint, Parameter, control, field, present
from studio.ui.grid_actions import GridActions, create_grid_actions, open_image, wire_enhance, wire_vary
from studio.ui.i18n import say, tr
from studio.ui.reference_images import reference_image
from studio.ui.runner import Job
from studio.ui.send_to import Sent, Updates, sent_values
from studio.ui.widgets.prompt_controls import PromptControls, prompt_box, prompt_settings
from studio.ui.widgets.result_panel import ResultPanel

TAB = TabInfo("img2img", "Image to Image", takes_images=True)
# What Edit takes from its editing model's preset, not from the page's controls (set for the page's Model)
EDITING_MODELS_OWN = {"model", "steps", "guidance_scale", "sampler"}


@dataclass
class ImageToImageTab:
    image: gr.Image  # Re-imagine's
    strength: gr.Slider
    generate: gr.Button
    variation: gr.Radio
    vary: gr.Button
    editor: gr.ImageEditor  # Inpaint's
    inpaint_strength: gr.Slider
    mask_blur: gr.Slider
    inpaint: gr.Button
    outpaint_image: gr.Image  # Zoom out / Pan's
    direction: gr.Radio
    extend: gr.Button
    edit_image: gr.Image  # Edit's
    edit_pictures: list[gr.Image]  # pictures 2 and 3, which an instruction may name
    editing_model: gr.Dropdown
    edit: gr.Button
    stop: gr.Button
    controls: PromptControls
    results: ResultPanel
    actions: GridActions

    @property
    def images(self) -> list[gr.components.Component]:
        """Every mode's image, which all get the same one."""
        return [self.image, self.editor, self.outpaint_image, self.edit_image]


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
    pipelines = {task: studio.pipeline(task) for task in ("img2img", "inpaint", "outpaint", "edit")}
    tab = layout(studio, pipelines["img2img"].loras)
    endpoints = [*image_endpoints(tab), vary_endpoint(tab, studio.presets)]
    wire_runs(studio, tab, pipelines, endpoints)
    wire_filling(studio, tab)
    return tab


def layout(studio: Studio, loras: Loras) -> ImageToImageTab:
    presets, max_side = studio.presets, studio.settings.max_image_side
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
                    editor = mask_editor(max_side)
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
                with gr.Tab(tr("Edit"), id="edit"):
                    edit_image = input_image("edit-image", "Image to edit", max_side)
                    edit_pictures = picture_slots(max_side)
                    editing_model = gr.Dropdown(
                        choices=[(presets.models[name].label, name) for name in presets.editors()],
                        value=next(iter(presets.editors()), None),
                        allow_custom_value=True,  # a Kontext folder or hub id
                        label=tr("Editing model"),
                        info=tr("Made for instruction editing: the prompt says what to change"),
                        elem_id="edit-model",
                    )
                    edit = gr.Button(tr("Edit"), variant="primary", elem_id="edit-generate")
            with gr.Row(elem_classes=["run-buttons"]):
                reroll = gr.Button(tr("Reroll"), elem_id="img2img-reroll", min_width=0)
                stop = gr.Button(tr("Stop"), variant="stop", elem_id="img2img-stop", min_width=0)
            controls = prompt_settings("img2img", prompt, studio, loras=loras)
        with gr.Column(scale=3, min_width=360):
            results = ResultPanel("img2img", studio, reroll=reroll)
            actions = create_grid_actions("img2img", studio, results, controls)
    return ImageToImageTab(
        image, strength, generate, variation, vary, editor, inpaint_strength, mask_blur, inpaint,
        outpaint_image, direction, extend, edit_image, edit_pictures, editing_model, edit, stop, controls,
        results, actions,
    )  # fmt: skip


def picture_slots(max_side: int) -> list[gr.Image]:
    """Edit's pictures 2 and 3, for models that read several (Qwen-Image-Edit-Plus, FLUX.2 [klein])."""
    with gr.Row(equal_height=False):
        return [
            reference_image(tr(f"Picture {number} (optional)"), f"edit-picture-{number}", max_side)
            for number in range(2, MAX_EDIT_PICTURES + 1)
        ]


def mask_editor(max_side: int) -> gr.ImageEditor:
    return readable(
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


def runs_on(
    results: ResultPanel,
    task: str,
    action: str = "",
    *,
    image_file: bool = False,
    gathered: Callable[[dict], dict] = lambda values: values,
):
    """An endpoint function running `task` on its values (`image_file`: the "image" value is a file the
    API or the page sent, opened with its parameters; `gathered`: the values as the request takes them) as
    the grid's job, Reroll saying `action`."""

    def run(values: dict, request: gr.Request, progress: gr.Progress):
        if image_file:
            path = values.pop("image")
            values = {**values, "image": open_image(path) if path else None}
        yield from results.run(Job(task, present(gathered(values)), action), request, progress)

    return run


def more_pictures_gathered(values: dict) -> dict:
    """Edit's values with its pictures 2 and 3 (those given) as the request's `more_pictures`."""
    values = dict(values)
    given = [values.pop(f"picture_{n}", None) for n in range(2, MAX_EDIT_PICTURES + 1)]
    pictures = tuple(picture for picture in given if picture is not None)
    return {**values, "more_pictures": pictures} if pictures else values


def image_endpoints(tab: ImageToImageTab) -> list[Endpoint]:
    """/img2img, /inpaint, /outpaint and /edit: each mode's image, the prompt controls and its own
    settings."""
    controls, results = tab.controls, tab.results

    def image_parameter(doc: str, component: gr.components.Component) -> Parameter:
        return Parameter("image", component, IMAGE_FILE, REQUIRED, doc)

    steps_doc = "denoising steps before strength; left out, the model preset's."
    reimagine = Endpoint(
        "img2img",
        "Re-imagine an image with a prompt. Returns the PNGs (parameters embedded) and their parameters.",
        [
            image_parameter("the input image.", tab.image),
            *with_steps_doc(controls.parameters("what the image should become (optional)."), steps_doc),
            field(
                ImageToImageRequest, "strength", tab.strength, "0 returns the input unchanged, 1 ignores it."
            ),
            *controls.later_parameters(),
        ],
        runs_on(results, "img2img", image_file=True),
    )

    def inpaint_region(values: dict, request: gr.Request, progress: gr.Progress):
        image_and_mask = values.pop("image_and_mask") or {}
        layers = image_and_mask.get("layers") or []
        values = {**values, "image": image_and_mask.get("background"), "mask": layers[0] if layers else None}
        yield from runs_on(results, "inpaint", "Inpaint")(values, request, progress)

    mask_doc = '{"background": image, "layers": [mask]}; painted (opaque) mask pixels repaint.'
    inpaint = Endpoint(
        "inpaint",
        "Repaint only the painted part of an image (Vary Region); pixels away from it stay exactly.",
        [
            Parameter("image_and_mask", tab.editor, dict | None, REQUIRED, mask_doc),
            *controls.parameters("what to paint there."),
            field(
                InpaintRequest,
                "strength",
                tab.inpaint_strength,
                "1 repaints from scratch; lower keeps the old colours.",
            ),
            field(InpaintRequest, "mask_blur", tab.mask_blur, "pixels of soft edge around the painted area."),
            *controls.later_parameters(),
        ],  # fmt: skip
        inpaint_region,
    )
    outpaint = Endpoint(
        "outpaint",
        "Zoom out or pan: extend the canvas and paint the new border; the original pixels are kept.",
        [
            image_parameter("the image to extend.", tab.outpaint_image),
            field(OutpaintRequest, "direction", tab.direction, f"one of {', '.join(DIRECTION_LABELS)}."),
            *controls.parameters("what the wider scene shows (optional)."),
            *controls.later_parameters(),
        ],
        runs_on(results, "outpaint", "Zoom out / Pan", image_file=True),
    )
    edit_doc = 'the instruction: what to change, e.g. "make it night" or "remove the car".'
    edit = Endpoint(
        "edit",
        "Edit an image by an instruction with a model made for it (FLUX.1 Kontext): what it does not name "
        "stays.",
        [
            image_parameter("the image to edit.", tab.edit_image),
            control("model", tab.editing_model, str, "an editing model preset, folder or hub id."),
            *[p for p in controls.parameters(edit_doc) if p.name not in EDITING_MODELS_OWN],
            *controls.later_parameters(),
            *[  # added later: last, so that calls giving the others by position keep working
                Parameter(
                    f"picture_{number}",
                    picture,
                    IMAGE_FILE,
                    None,
                    f"picture {number}, which the instruction may name (optional; for models that read "
                    "several: Qwen-Image-Edit-Plus, FLUX.2 [klein]).",
                )
                for number, picture in enumerate(tab.edit_pictures, 2)
            ],
        ],
        runs_on(results, "edit", "Edit", image_file=True, gathered=more_pictures_gathered),
    )
    return [reimagine, inpaint, outpaint, edit]


def vary_endpoint(tab: ImageToImageTab, presets: Presets) -> Endpoint:
    """/vary: Midjourney's Vary, on the image's own prompt and settings with a new seed."""
    controls = tab.controls

    def vary_image(values: dict, request: gr.Request, progress: gr.Progress):
        if not values["image"]:
            raise gr.Error(say("Add an image to vary first."), print_exception=False)
        with user_errors():
            strength = presets.variation(values["variation"]).strength
            chosen = variation_request(open_image(values["image"]), strength, prompt=values["prompt"] or "")
        chosen.update(present({"num_images": values["num_images"], "seed": values["seed"]}))
        yield from runs_on(tab.results, "img2img", f"Vary {values['variation']}")(chosen, request, progress)

    variations = ", ".join(f'"{name}"' for name in presets.variations)
    image_doc = "the image to vary; our PNGs and other studios' bring their parameters along."
    return Endpoint(
        "vary",
        "Variations of an image, Midjourney's Vary: the image's own prompt and settings, a new seed.",
        [
            Parameter("image", tab.image, IMAGE_FILE, REQUIRED, image_doc),
            control("variation", tab.variation, str, f"{variations}."),
            control("prompt", controls.prompt, str, "replaces the image's own prompt when given."),
            control(
                "num_images", controls.num_images, int, f"{ImageToImageRequest.range_text('num_images')}."
            ),
            control("seed", controls.seed, int, "-1 for a random seed."),
        ],
        vary_image,
    )


def wire_runs(
    studio: Studio, tab: ImageToImageTab, pipelines: dict[str, Task], endpoints: list[Endpoint]
) -> None:
    """Each mode's button runs its endpoint once the prompt's parameters are read; the grid's Vary and
    enhance buttons run here too; Stop ends them all; another tab may start a Vary here."""
    reimagine, inpaint, outpaint, edit, vary = endpoints
    controls, results = tab.controls, tab.results
    # --iw is the image's weight: less change for the input image, or the region's old colours
    image_weights = {"img2img": {"strength": tab.strength}, "inpaint": {"strength": tab.inpaint_strength}}

    def read_then_run(button: gr.Button, endpoint: Endpoint):
        task = endpoint.name
        read = controls.read_prompt_first(button.click, pipelines[task], image_weights.get(task))
        return read.success(
            endpoint.fn, endpoint.inputs, results.outputs, api_name=task, **results.event_options
        )

    runs = ((tab.generate, reimagine), (tab.inpaint, inpaint), (tab.extend, outpaint), (tab.edit, edit))
    events = [read_then_run(button, endpoint) for button, endpoint in runs]
    options = results.event_options
    events.append(tab.vary.click(vary.fn, vary.inputs, results.outputs, api_name=vary.name, **options))
    events += wire_vary(tab.actions, results, studio, controls.num_images)
    events += wire_enhance(tab.actions, results, studio)
    results.connect(events, tab.stop)
    after = results.select_first_after
    studio.send_to.action(TAB.id, "vary", vary.fn, vary.inputs, results.outputs, after=after, **options)


def wire_filling(studio: Studio, tab: ImageToImageTab) -> None:
    """What fills the tab: a dropped image that carries parameters (the prompt fields; every mode gets
    the image), an image sent from another tab, and a reopened link (its grid's settings; the input image
    is not recorded)."""
    c = tab.controls
    prompt_fields = [c.prompt, c.negative_prompt, c.styles]

    def fill_from_image(path: str | None) -> Updates:
        try:
            carried = read_parameters(path) if path else None
        except OSError:  # not an image PIL can open; the run itself will say so
            carried = None
        if isinstance(carried, GenerationParameters):
            prompts = [carried.typed_prompt, carried.typed_negative_prompt, list(carried.styles)]
        elif isinstance(carried, dict):
            prompts = [carried.get("prompt", ""), carried.get("negative_prompt", ""), None]
        else:
            prompts = [None, None, None]
        updates = {
            **dict(zip(prompt_fields, prompts, strict=True)),
            tab.editor: path,
            tab.outpaint_image: path,
            tab.edit_image: path,
        }
        return sent_values(updates) or gr.skip()

    outputs = [*prompt_fields, tab.editor, tab.outpaint_image, tab.edit_image]
    tab.image.upload(fill_from_image, [tab.image], outputs, **INSTANT_EVENT)

    def fill(sent: Sent) -> Updates:
        """Every mode gets the image; the prompt fields get what made it; Vary, the variation asked for."""
        styles = None if sent.styles is None else list(sent.styles)
        images = dict.fromkeys(tab.images, sent.path)
        prompts = dict(zip(prompt_fields, [sent.prompt, sent.negative_prompt, styles], strict=True))
        return sent_values({**images, **prompts, tab.variation: sent.variation})

    studio.send_to.receive(TAB.id, [*tab.images, *prompt_fields, tab.variation], fill)
    tab.results.restore_on_open(
        c.received_outputs, lambda values: c.received(Sent.of(None, values), studio.presets)
    )


def with_steps_doc(parameters: list[Parameter], doc: str) -> list[Parameter]:
    return [p.described(doc) if p.name == "steps" else p for p in parameters]
