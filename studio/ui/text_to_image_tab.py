"""The Text to Image tab: prompt, styles, model and shape in; a grid of PNGs with their parameters out."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from pipelines.common import parse_request
from pipelines.text_to_image import MAX_PROMPT_CHARS, TextToImagePipeline, TextToImageRequest
from studio.errors import RunCancelled
from studio.history import History
from studio.presets import Presets
from studio.ui.common import (
    GPU_EVENT,
    INSTANT_EVENT,
    StopSignals,
    describe_parameters,
    gallery_items,
    gradio_progress,
    session_of,
    slider,
    user_errors,
)


@dataclass
class TextToImageTab:
    """The components other tabs and the app need to reach (grid actions, send-to)."""

    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    gallery: gr.Gallery
    parameters: gr.JSON


def model_choices(presets: Presets, current: str | None) -> list[tuple[str, str]]:
    choices = [(preset.label, preset.name) for preset in presets.models.values()]
    if current and current not in presets.models:
        choices.append((current, current))
    return choices


def create_tab(
    pipeline: TextToImagePipeline,
    presets: Presets,
    history: History,
    stop_signals: StopSignals,
    default_model: str | None = None,
) -> TextToImageTab:
    default_model = default_model or presets.default_model
    defaults = presets.defaults_for(default_model)

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = gr.Textbox(
                value="",
                label="Prompt",
                placeholder="A lighthouse on a cliff at dawn, waves crashing…",
                lines=3,
                max_length=MAX_PROMPT_CHARS,
                elem_id="txt2img-prompt",
            )
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="txt2img-generate", scale=2)
                reroll = gr.Button("🔄 Reroll", elem_id="txt2img-reroll", scale=1)
                stop = gr.Button("⏹ Stop", variant="stop", elem_id="txt2img-stop", scale=1)
            negative_prompt = gr.Textbox(
                value="",
                label="Negative prompt",
                placeholder="What to keep out of the image",
                lines=1,
                max_length=MAX_PROMPT_CHARS,
            )
            styles = gr.Dropdown(
                choices=list(presets.styles),
                value=[],
                multiselect=True,
                label="Styles",
                info="Stack several: each wraps the prompt of the one before.",
            )
            with gr.Row():
                model = gr.Dropdown(
                    choices=model_choices(presets, default_model),
                    value=default_model,
                    allow_custom_value=True,
                    label="Model",
                    info="A preset, or type a hub id, a local folder or a .safetensors path.",
                    scale=2,
                )
                num_images = gr.Slider(
                    minimum=TextToImageRequest.bounds("num_images")[0],
                    maximum=TextToImageRequest.bounds("num_images")[1],
                    step=1,
                    value=4 if default_model in presets.models else 1,
                    label="Images",
                    scale=1,
                )
            aspect_ratio = gr.Radio(
                choices=list(presets.aspect_ratios),
                value=TextToImageRequest.default("aspect_ratio"),
                label="Aspect ratio",
            )
            with gr.Accordion("Advanced", open=False):
                with gr.Row():
                    seed = gr.Number(
                        value=-1,
                        precision=0,
                        label="Seed",
                        info="-1 picks a new random seed each run",
                        minimum=-1,
                        maximum=TextToImageRequest.bounds("seed")[1],
                    )
                    random_seed = gr.Button("🎲 Random", scale=0, min_width=90)
                steps = slider(TextToImageRequest, "steps", value=defaults.steps, label="Steps")
                guidance_scale = slider(
                    TextToImageRequest,
                    "guidance_scale",
                    step=0.5,
                    value=defaults.guidance_scale,
                    label="Guidance (CFG scale)",
                    info="0 for turbo models; 5-8 for regular ones",
                )
                sampler = gr.Dropdown(choices=list(presets.samplers), value=defaults.sampler, label="Sampler")
        with gr.Column(scale=3, min_width=360):
            gallery = gr.Gallery(
                label="Results",
                format="png",
                columns=2,
                object_fit="contain",
                height=560,
                buttons=["download", "fullscreen"],
                interactive=False,
                elem_id="txt2img-gallery",
            )
            selected_parameters = gr.Textbox(
                label="Selected image",
                lines=4,
                interactive=False,
                buttons=["copy"],
                placeholder="Click an image to see how it was made.",
                elem_id="txt2img-selected",
            )
            with gr.Row():
                use_seed = gr.Button("Use this image's seed", size="sm")
            with gr.Accordion("All parameters (JSON)", open=False):
                parameters = gr.JSON(label="Parameters of each image", elem_id="txt2img-parameters")

    last_request = gr.State(None)  # what Reroll runs again, with a new seed
    selected_index = gr.State(None)

    def run(values: dict, request: gr.Request, progress: gr.Progress):
        """Generate, saving each image as it is decoded and showing the grid as it fills."""
        with user_errors():
            parsed = parse_request(TextToImageRequest, values)
            session = session_of(request)
            stop_signal = stop_signals.begin(session)
            results = []
            progress(0, desc="Preparing the model…")
            try:
                for generated in pipeline.generate(
                    parsed, progress=gradio_progress(progress, "Denoising"), is_cancelled=stop_signal.is_set
                ):
                    path = history.save(generated.image, generated.parameters)
                    results.append((str(path), generated.parameters))
                    yield _outputs(results, values)
            except RunCancelled:
                gr.Warning(f"Stopped: {len(results)} of {parsed.num_images} images finished.")
            finally:
                stop_signals.end(session, stop_signal)
            yield _outputs(results, values)

    def _outputs(results, values):
        return gallery_items(results), [p.to_dict() for _, p in results], values

    def txt2img(
        prompt: str,
        negative_prompt: str = "",
        styles: list[str] | None = None,
        model: str | None = None,
        aspect_ratio: str = "1:1",
        num_images: int = 1,
        seed: int = -1,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: str | None = None,
        request: gr.Request = None,
        progress: gr.Progress = gr.Progress(),
    ):
        """Make 1-4 images from a prompt. Returns the PNGs (parameters embedded) and each image's parameters.

        Args:
            prompt: what to draw.
            negative_prompt: what to keep out.
            styles: style preset names, stacked in order.
            model: model preset name, hub id, local folder or .safetensors path; empty for the default.
            aspect_ratio: one of the aspect ratio presets, e.g. "1:1", "16:9".
            num_images: 1 to 4; image i uses seed + i.
            seed: -1 for random.
            steps: denoising steps; empty for the model preset's.
            guidance_scale: classifier-free guidance; empty for the model preset's.
            sampler: sampler name, e.g. "Euler a"; empty for the model preset's.
        """
        values = {
            "prompt": prompt or "",
            "negative_prompt": negative_prompt or "",
            "styles": tuple(styles or ()),
            "model": model or None,
            "aspect_ratio": aspect_ratio,
            "num_images": int(num_images),
            "seed": -1 if seed is None else int(seed),
            "steps": None if steps in (None, "") else int(steps),
            "guidance_scale": None if guidance_scale in (None, "") else float(guidance_scale),
            "sampler": sampler or None,
        }
        yield from run(values, request, progress)

    def reroll_last(values: dict | None, request: gr.Request, progress: gr.Progress = gr.Progress()):
        if not values:
            raise gr.Error("Nothing to reroll yet: generate first.", print_exception=False)
        yield from run({**values, "seed": -1}, request, progress)

    inputs = [
        prompt,
        negative_prompt,
        styles,
        model,
        aspect_ratio,
        num_images,
        seed,
        steps,
        guidance_scale,
        sampler,
    ]
    outputs = [gallery, parameters, last_request]
    generate_event = generate.click(txt2img, inputs, outputs, api_name="txt2img", **GPU_EVENT)
    submit_event = prompt.submit(txt2img, inputs, outputs, api_visibility="private", **GPU_EVENT)
    reroll_event = reroll.click(reroll_last, [last_request], outputs, api_visibility="private", **GPU_EVENT)

    def show_first(params: list[dict] | None):
        return (0, describe_parameters(params[0])) if params else (None, "")

    for event in (generate_event, submit_event, reroll_event):
        event.then(show_first, [parameters], [selected_index, selected_parameters], **INSTANT_EVENT)

    def stop_running(request: gr.Request):
        stop_signals.stop(session_of(request))

    stop.click(
        stop_running, None, None, cancels=[generate_event, submit_event, reroll_event], **INSTANT_EVENT
    )

    def show_selected(params: list[dict] | None, event: gr.SelectData):
        if not params or event.index is None or event.index >= len(params):
            return None, ""
        return event.index, describe_parameters(params[event.index])

    gallery.select(show_selected, [parameters], [selected_index, selected_parameters], **INSTANT_EVENT)

    def seed_of_selected(params: list[dict] | None, index: int | None):
        if not params:
            raise gr.Error("Generate an image first.", print_exception=False)
        return params[index if index is not None else 0]["seed"]

    use_seed.click(seed_of_selected, [parameters, selected_index], [seed], **INSTANT_EVENT)
    random_seed.click(lambda: -1, None, [seed], **INSTANT_EVENT)

    def apply_model_defaults(model_name: str):
        chosen = presets.defaults_for(model_name)
        return chosen.steps, chosen.guidance_scale, chosen.sampler

    model.change(apply_model_defaults, [model], [steps, guidance_scale, sampler], **INSTANT_EVENT)
    return TextToImageTab(
        prompt=prompt, negative_prompt=negative_prompt, gallery=gallery, parameters=parameters
    )
