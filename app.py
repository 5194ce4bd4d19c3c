"""The studio's Gradio app: core objects built once, tabs composed, launched under `__main__`.

`demo` is built at import so hosts that import this file (Hugging Face Spaces, `gradio app.py`) find it;
run `python app.py --help` for the flags.
"""

from __future__ import annotations

import logging
import sys

import gradio as gr

from pipelines.text_to_image import TextToImagePipeline
from studio.devices import resolve_device
from studio.errors import StudioError
from studio.history import History
from studio.model_cache import ModelCache
from studio.presets import load_presets
from studio.settings import Settings, load_settings
from studio.ui import text_to_image_tab
from studio.ui.common import StopSignals
from studio.ui.theme import CSS, THEME

log = logging.getLogger("studio")

QUEUE_SIZE = 64


def build_app(settings: Settings) -> gr.Blocks:
    presets = load_presets(settings.presets_dir)
    device_config = resolve_device(settings.device, settings.dtype)
    cache = ModelCache(device_config, offline=settings.offline)
    history = History(settings.outputs)
    stop_signals = StopSignals()
    text_to_image = TextToImagePipeline(cache, presets)

    with gr.Blocks(title="Image Studio", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Image Studio\n"
            f"<span class='studio-device'>Running on {device_config.describe()}. "
            f"Results are saved to `{settings.outputs}` with their parameters.</span>",
            elem_id="studio-header",
        )
        with gr.Tabs(), gr.Tab("Text to Image", id="txt2img"):
            text_to_image_tab.create_tab(
                text_to_image, presets, history, stop_signals, default_model=settings.model
            )
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    demo.studio_cache = cache  # for tests and benchmarks that inspect what was loaded
    return demo


def launch_options(settings: Settings) -> dict:
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "auth": list(settings.auth) or None,
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
