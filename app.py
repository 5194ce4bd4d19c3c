"""The studio's Gradio app: core objects built once, tabs composed, launched under `__main__`.

`demo` is built at import so hosts that import this file (Hugging Face Spaces, `gradio app.py`) find it;
run `python app.py --help` for the flags.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import gradio as gr

from pipelines.diffusion_style import DiffusionStylePipeline, DiffusionStyleRequest
from pipelines.image_to_image import ImageToImagePipeline, ImageToImageRequest
from pipelines.inpaint import InpaintPipeline, InpaintRequest
from pipelines.instant_style import InstantStylePipeline, InstantStyleRequest
from pipelines.outpaint import OutpaintPipeline, OutpaintRequest
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from pipelines.upscale import UpscalePipeline, UpscaleRequest
from studio import zerogpu
from studio.devices import resolve_device
from studio.errors import StudioError
from studio.history import History
from studio.memory import default_budget
from studio.model_cache import ModelCache
from studio.models import resolve_model
from studio.presets import Presets, load_presets
from studio.settings import Settings, load_settings
from studio.ui import (
    image_to_image_tab,
    memory_panel,
    png_info_tab,
    style_transfer_tab,
    text_to_image_tab,
    upscale_tab,
)
from studio.ui.common import INSTANT_EVENT, StopSignals
from studio.ui.theme import CSS, THEME
from studio.ui.widgets import JobRunner, Task, selected_result

log = logging.getLogger("studio")


def build_app(settings: Settings) -> gr.Blocks:
    presets = load_presets(settings.presets_dir)
    if settings.model:  # requests that name no model (API calls, Vary on a plain image) use --model
        presets = dataclasses.replace(presets, default_model=settings.model)
    device_config = resolve_device(settings.device, settings.dtype)
    budget = default_budget(device_config.device, settings.gpu_budget_gib, settings.ram_budget_gib)
    # ZeroGPU wants every weight on the GPU from start-up: no offloading there.
    offload = "none" if zerogpu.on_zero_gpu() else settings.offload
    cache = ModelCache(device_config, offline=settings.offline, budget=budget, offload=offload)
    upscale = UpscalePipeline(cache, presets, settings.upscalers_dir)
    instant_style = InstantStylePipeline(cache)
    diffusion_style = DiffusionStylePipeline(cache, presets)
    tasks = {
        "txt2img": Task(TextToImagePipeline(cache, presets).generate, TextToImageRequest),
        "img2img": Task(ImageToImagePipeline(cache, presets).generate, ImageToImageRequest),
        "inpaint": Task(InpaintPipeline(cache, presets).generate, InpaintRequest),
        "outpaint": Task(OutpaintPipeline(cache, presets).generate, OutpaintRequest),
        "style_instant": Task(instant_style.generate, InstantStyleRequest),
        "style_diffusion": Task(diffusion_style.generate, DiffusionStyleRequest),
        "upscale": Task(upscale.generate, UpscaleRequest),
    }
    gpu_runner = None
    if zerogpu.on_zero_gpu():
        # The platform wants weights on the GPU at start-up; requests then run in spaces.GPU functions.
        preload_default_model(cache, presets)
        gpu_runner = zerogpu.gpu_runner({name: task.generate for name, task in tasks.items()})
    runner = JobRunner(
        History(settings.outputs),
        StopSignals(),
        tasks,
        gpu_runner=gpu_runner,
        max_image_side=settings.max_image_side,
        max_images=settings.max_images,
    )

    with gr.Blocks(title="Image Studio", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Image Studio\n"
            f"<span class='studio-device'>Running on {device_config.describe()}. "
            f"Results are saved to `{settings.outputs}` with their parameters."
            f"{cpu_note(device_config, presets.default_model)}</span>",
            elem_id="studio-header",
        )
        with gr.Tabs() as tabs:
            with gr.Tab("Text to Image", id="txt2img"):
                txt2img = text_to_image_tab.create_tab(runner, presets, default_model=settings.model)
            with gr.Tab("Image to Image", id="img2img"):
                img2img = image_to_image_tab.create_tab(runner, presets, default_model=settings.model)
            with gr.Tab("Style Transfer", id="style"):
                style = style_transfer_tab.create_tab(
                    runner,
                    presets,
                    [(name, instant_style.preview_path(name)) for name in instant_style.style_names()],
                    diffusion_style.preview_structure,
                    default_model=settings.model,
                )
            with gr.Tab("Upscale", id="upscale"):
                upscale_ui = upscale_tab.create_tab(
                    runner, presets, upscale.upscaler_names(), default_model=settings.model
                )
            with gr.Tab("PNG Info", id="png_info"):
                png_info = png_info_tab.create_tab()
        wire_send_to(tabs, txt2img, img2img, style, upscale_ui, png_info, presets)
        memory_panel.create_panel(cache)

    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    demo.studio_cache = cache  # for tests and benchmarks that inspect what was loaded
    return demo


CPU_MODEL = "sd-turbo"  # the preset that makes an image in reasonable time on a CPU


def cpu_note(device_config, default_model: str) -> str:
    """For CPU users: which models suit them (and whether the default is one)."""
    if device_config.is_accelerator:
        return ""
    turbo = "SD-Turbo, the default," if default_model == CPU_MODEL else f"SD-Turbo (model {CPU_MODEL})"
    return (
        f" No GPU here: {turbo} makes an image in 1–4 steps and suits a CPU; SD 1.5 and SDXL"
        " take minutes per image. Instant style transfer and Real-ESRGAN upscaling run well on a CPU."
    )


def preload_default_model(cache: ModelCache, presets: Presets) -> None:
    try:
        cache.base_model(resolve_model(None, presets))
    except StudioError as error:  # the page still opens and says so on the first run
        log.warning("could not preload the default model: %s", error)


def wire_send_to(
    tabs: gr.Tabs,
    txt2img: text_to_image_tab.TextToImageTab,
    img2img: image_to_image_tab.ImageToImageTab,
    style: style_transfer_tab.StyleTransferTab,
    upscale: upscale_tab.UpscaleTab,
    png_info: png_info_tab.PngInfoTab,
    presets: Presets,
) -> None:
    """Send-to buttons: the target tab opens with the image and its prompt filled in."""
    c = img2img.controls
    # Every mode of Image to Image gets the image: Re-imagine, Inpaint's canvas, Zoom out / Pan.
    to_img2img = [
        img2img.image,
        img2img.editor,
        img2img.outpaint_image,
        c.prompt,
        c.negative_prompt,
        c.styles,
    ]

    def send_result_to_img2img(gallery_value, params, index):
        path, chosen = selected_result(gallery_value, params, index)
        prompt, negative, styles = chosen["user_prompt"], chosen["user_negative_prompt"], chosen["styles"]
        return path, path, path, prompt, negative, list(styles), gr.Tabs(selected="img2img")

    grids = (txt2img, img2img, style)
    for tab in grids:
        tab.actions.send_to["img2img"].click(
            send_result_to_img2img,
            [tab.results.gallery, tab.results.parameters, tab.results.selected_index],
            [*to_img2img, tabs],
            **INSTANT_EVENT,
        )

    def send_image_and_prompt(target: str):
        def send(gallery_value, params, index):
            path, chosen = selected_result(gallery_value, params, index)
            return path, chosen["user_prompt"], gr.Tabs(selected=target)

        return send

    # Upscale and Style Transfer take the image, and the prompt for their diffusion passes.
    for target, fields in {
        "upscale": [upscale.image, upscale.controls.prompt],
        "style": [style.image, style.controls.prompt],
    }.items():
        for tab in grids:
            tab.actions.send_to[target].click(
                send_image_and_prompt(target),
                [tab.results.gallery, tab.results.parameters, tab.results.selected_index],
                [*fields, tabs],
                **INSTANT_EVENT,
            )

    def png_to_img2img(image, fields):
        filled = png_info_tab.txt2img_fields(fields)
        prompt, negative, styles = filled["prompt"], filled["negative_prompt"], filled["styles"]
        return image, image, image, prompt, negative, styles, gr.Tabs(selected="img2img")

    png_info.send_to_img2img.click(
        png_to_img2img, [png_info.image, png_info.parameters], [*to_img2img, tabs], **INSTANT_EVENT
    )

    c = txt2img.controls
    to_txt2img = [
        c.prompt,
        c.negative_prompt,
        c.styles,
        c.seed,
        c.steps,
        c.guidance_scale,
        c.sampler,
        c.model,
    ]

    def png_to_txt2img(fields):
        filled = png_info_tab.txt2img_fields(fields)
        model = filled["model"]
        known_model = model and (model in presets.models or Path(model).exists())
        sampler = filled["sampler"] if filled["sampler"] in presets.samplers else gr.skip()
        size = filled["width"] and filled["height"]
        return (
            filled["prompt"],
            filled["negative_prompt"],
            [s for s in filled["styles"] if s in presets.styles],
            filled["seed"],
            filled["steps"] or gr.skip(),
            gr.skip() if filled["guidance_scale"] is None else filled["guidance_scale"],
            sampler,
            model if known_model else gr.skip(),
            presets.nearest_aspect_ratio(filled["width"], filled["height"]) if size else gr.skip(),
            gr.Tabs(selected="txt2img"),
        )

    png_info.send_to_txt2img.click(
        png_to_txt2img, [png_info.parameters], [*to_txt2img, txt2img.aspect_ratio, tabs], **INSTANT_EVENT
    )


def launch_options(settings: Settings) -> dict:
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "auth": list(settings.auth) or None,
        "root_path": settings.root_path or None,
        "allowed_paths": [str(settings.outputs.resolve())],
        "theme": THEME,
        "css": CSS,
        "footer_links": ["api", "gradio", "settings"],
    }


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(argv)
        app = build_app(settings)
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if settings.share and not settings.auth:
        log.warning("Sharing a public link without --auth: anyone with the link can use this studio.")
    app.launch(**launch_options(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
else:
    demo = build_app(load_settings([]))
