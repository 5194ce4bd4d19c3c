"""At start, whether the chosen model is on this machine: found out in the background, said once.

A newcomer's first start used to say nothing about the model until the first Generate, which then paid for
loading it (or failed with the offline message). Now the check runs as the app starts: a model that is
here is loaded, so the first Generate does not wait; one that is not is named with what to do; a broken
`--model` file is reported. One line goes to the terminal, and the page's header shows the same words.
"""

from __future__ import annotations

import logging
import threading
import time

import gradio as gr

from studio.core.cache import ModelCache
from studio.core.errors import ModelUnavailable, StudioError
from studio.core.models import hub_reachable, resolve_model
from studio.core.presets import Presets
from studio.ui.i18n import say

log = logging.getLogger("studio")


class ModelCheck:
    def __init__(self, cache: ModelCache, presets: Presets) -> None:
        self.cache = cache
        self.presets = presets
        self.message = f"Checking the model {presets.default_model}…"
        self.ready = False
        self.done = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self.run, name="model-check", daemon=True).start()

    def run(self, *, download: bool = False) -> str:
        """Check (and load) the chosen model now; returns what was said. `download`: fetch it from the
        hub if it is not here (ZeroGPU, whose requests must not spend their GPU time downloading)."""
        name = self.presets.default_model
        started = time.perf_counter()
        source = None
        try:
            source = resolve_model(None, self.presets)
            self.cache.load_base_model(source, local_only=not download)
        except ModelUnavailable as error:
            downloads = (
                not self.cache.offline and source is not None and source.kind == "hub" and hub_reachable()
            )
            if downloads:
                self.message = f"Model {name} is not on this machine yet: it downloads on the first Generate."
            else:
                self.message = str(error)
            log.warning("%s", self.message)
        except StudioError as error:  # a broken --model: the path or file is not a model
            self.message = f"Model {name} cannot be used: {error}"
            log.warning("%s", self.message)
        else:
            self.ready = True
            self.message = f"Model {name} is ready (loaded in {time.perf_counter() - started:.1f} s)."
            log.info("%s", self.message)
        self.done.set()
        return self.message

    def elsewhere(self, where: str) -> None:
        """The models are loaded in other processes (`where`): nothing to check here, and the page says so."""
        self.message = f"Models load and run in {where}, each with its own model cache."
        self.ready = True
        self.done.set()

    def show(self) -> None:
        """The check's words in the page, followed until it is done."""
        line = gr.Markdown(self.message, elem_id="model-status", elem_classes=["studio-device"])
        timer = gr.Timer(1.0)

        def follow():
            return say(self.message), gr.Timer(active=not self.done.is_set())

        timer.tick(follow, None, [line, timer], concurrency_limit=None, api_visibility="private")
