"""The studio's Gradio app: `create_app(settings)` builds the core objects once and composes the tabs;
`main` launches it under `__main__` (as a Space does). Importing this file builds nothing: a host that looks
for `demo` (`gradio app.py`) gets it built when it asks. Run `python app.py --help` for the flags.

A new tab is a module in studio/ui with `TAB` and `create_tab(studio)`, listed in TABS.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import gradio as gr

from studio import client_apis
from studio.core.devices import DeviceConfig
from studio.core.errors import StudioError
from studio.core.models import (
    ModelSource,
    hub_reachable,
    on_this_machine,
    resolve_model,
    weight_bytes_on_disk,
)
from studio.core.presets import Presets
from studio.core.settings import Settings, load_settings
from studio.ui import (
    agent_tools,
    blend_tab,
    describe_tab,
    history_tab,
    image_to_image_tab,
    live_tab,
    memory_panel,
    personalize_tab,
    png_info_tab,
    style_transfer_tab,
    styles_tab,
    text_to_image_tab,
    upscale_tab,
)
from studio.ui.common import BROWSER_HEAD, INSTANT_EVENT, session_of
from studio.ui.context import Studio
from studio.ui.i18n import HEAD, say, tr, translations
from studio.ui.theme import CSS, THEME

log = logging.getLogger("studio")

TABS = (
    text_to_image_tab,
    live_tab,
    image_to_image_tab,
    blend_tab,
    style_transfer_tab,
    upscale_tab,
    describe_tab,
    styles_tab,
    personalize_tab,
    history_tab,
    png_info_tab,
)


CACHE_SWEEP = (3600, 6 * 3600)  # (every N seconds, files older than M seconds)


def create_app(settings: Settings, tabs: Sequence[ModuleType] = TABS) -> gr.Blocks:
    """The whole studio; `tabs` are modules with `TAB` and `create_tab(studio)`, in the order shown."""
    studio = Studio.from_settings(settings, [tab.TAB for tab in tabs])
    # Uploads and the copies of results Gradio serves pile up in its cache: every hour, those older
    # than six hours go (results stay in the outputs folder and the History tab).
    with gr.Blocks(title="Image Studio", analytics_enabled=False, delete_cache=CACHE_SWEEP) as demo:
        gr.Markdown(tr("# Image Studio"), elem_id="studio-title")
        # Says where it runs and where results go, in the visitor's language (values inside).
        note = gr.Markdown(header_note(studio), elem_id="studio-header")

        def note_in_their_language(request: gr.Request) -> str:
            return header_note(studio, request)

        studio.when_loaded(note_in_their_language, [], [note])
        studio.model_check.show()
        # A link that reopens the studio as it is now (the grids, the prompts, the settings): Gradio's
        # deep links, which keep the page's state on the server for a while.
        # (The copied label goes into a script's double-quoted string: its quotes are escaped.)
        copied = str(tr("Link copied")).replace('"', '\\"')
        gr.DeepLinkButton(tr("Copy a link to this page"), copied_value=copied, size="sm", scale=0)
        with gr.Tabs() as tab_row:
            for tab in tabs:
                with gr.Tab(tr(tab.TAB.label), id=tab.TAB.id) as block:
                    studio.tab_blocks[tab.TAB.id] = block
                    tab.create_tab(studio)
        studio.send_to.wire(tab_row)
        for fn, inputs, outputs in studio.loads:
            demo.load(fn, inputs, outputs, **INSTANT_EVENT)

        def visitor_left(request: gr.Request) -> None:
            """A closed page: its run stops and its queued runs never start, so nobody waits behind them."""
            studio.runner.visitor_left(session_of(request))

        demo.unload(visitor_left)
        memory_panel.create_panel(studio.cache)

    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    demo.studio = studio  # for tests and benchmarks that inspect what was loaded
    return demo


def header_note(studio: Studio, request: gr.Request | None = None) -> str:
    # Where results go, as a path only for the studio's own user: visitors never see the server's folders.
    saved = (
        "Results are saved on the server with their parameters (History tab)."
        if studio.settings.reachable_by_others
        else f"Results are saved to `{studio.settings.outputs}` with their parameters."
    )
    sentences = [
        f"Running on {studio.cache.device_config.describe()}.",
        saved,
        *cpu_note(studio.cache.device_config, studio.presets, offline=studio.cache.offline),
    ]
    return f"<span class='studio-device'>{' '.join(say(sentence, request) for sentence in sentences)}</span>"


CPU_MODEL = "sd-turbo"  # the preset that makes an image in reasonable time on a CPU
SMALL_MODEL_BYTES = 300 * 2**20  # weights smaller than this make an image in seconds on a CPU


def cpu_note(device_config: DeviceConfig, presets: Presets, *, offline: bool) -> list[str]:
    """For CPU users: whether the model chosen suits them, judged by its steps and the size of its weights,
    and which one does, where that one can be had (here, or from the hub)."""
    if device_config.is_accelerator:
        return []
    chosen = presets.default_model
    try:
        source = resolve_model(None, presets)
    except StudioError:
        return []  # a --model that is no model: the model check says what is wrong with it
    size, shown = weight_bytes_on_disk(source), display_name(chosen)
    cpu_model = resolve_model(CPU_MODEL, presets) if CPU_MODEL in presets.models else None
    if source.preset is not None and source.preset.steps <= 4:
        fit = f"No GPU here: the chosen model, {shown}, makes an image in 1–4 steps and suits a CPU."
    elif 0 < size < SMALL_MODEL_BYTES:
        fit = (
            f"No GPU here: the chosen model, {shown}, is small ({size / 2**20:.0f} MB): images take seconds."
        )
    elif cpu_model is not None and can_be_had(cpu_model, offline):
        fit = (
            f"No GPU here: the chosen model, {shown}, may take minutes per image; {CPU_MODEL} makes one "
            f"in 1–4 steps (pick it under Model, or --model {CPU_MODEL})."
        )
    else:
        fit = f"No GPU here: the chosen model, {shown}, may take minutes per image."
    return [fit, "Instant style transfer and Real-ESRGAN upscaling run well on a CPU."]


def can_be_had(source: ModelSource, offline: bool) -> bool:
    """Whether a model is on this machine, or may be downloaded."""
    return on_this_machine(source) or (not offline and source.kind == "hub" and hub_reachable())


def display_name(model: str) -> str:
    """A model as people see it: a preset or hub id as it is, a folder or file by its own name."""
    return Path(model).name if Path(model).is_absolute() or model.startswith((".", "~")) else model


def launch_options(app: gr.Blocks) -> dict:
    """`launch()`'s arguments for a studio `create_app` made: its settings, and the APIs other apps speak
    (AUTOMATIC1111's `/sdapi/v1`, OpenAI's `/v1/images`) served on the same server."""
    settings = app.studio.settings
    if settings.mcp:
        agent_tools.serve_tools()
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "auth": list(settings.auth) or None,
        "root_path": settings.root_path or None,
        "mcp_server": settings.mcp,
        "allowed_paths": [str(settings.outputs.resolve())],
        # The history's index holds every prompt: never served as a file, whoever asks.
        "blocked_paths": [
            str(settings.outputs.resolve() / f".history.sqlite{end}") for end in ("", "-wal", "-shm")
        ],
        "theme": THEME,
        "css": CSS,
        "head": HEAD + BROWSER_HEAD,  # keeps the page's language where the server reads it, for messages
        "i18n": translations(),
        "footer_links": ["api", "gradio", "settings"],
        "app_kwargs": {"routes": client_apis.routes(app.studio)},
    }


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(argv)
        app = create_app(settings)
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if settings.share and not settings.auth:
        log.warning("Sharing a public link without --auth: anyone with the link can use this studio.")
    try:
        # Quiet: Gradio's own lines speak of launch()'s arguments; these speak of the studio's flags.
        app.launch(**launch_options(app), quiet=True, prevent_thread_lock=True)
    except OSError as error:
        if "port" not in str(error):
            raise
        app.close()  # Gradio's message names its `server_port` argument; this one, the studio's flag
        print(f"error: port {settings.port} is in use; start with --port N, or stop what is using it.",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"Running on {app.local_url}", flush=True)
    if app.share_url:
        print(f"Public link: {app.share_url}", flush=True)
    elif not settings.share:
        print("For a public link, start with --share (and --auth USER:PASSWORD).", flush=True)
    app.block_thread()
    return 0


@functools.cache
def _default_app() -> gr.Blocks:
    return create_app(load_settings([]))


def __getattr__(name: str) -> gr.Blocks:
    """`demo`, built from the environment's settings when first asked for (by `gradio app.py` or another
    host that imports this file), never at import: importing the module starts nothing."""
    if name == "demo":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
