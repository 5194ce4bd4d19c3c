"""Progress of preparing models (downloads from the hub, conversions), for whoever started them.

Long steps without a byte count (converting a model for OpenVINO) say what they do with
`report_preparation(text)`, which reaches the listener of `preparation_reported_to` in this thread, and
the log.

diffusers and transformers download through `huggingface_hub`, which draws its byte counts with its own tqdm
class and offers no callback (diffusers passes no bar class through either). So that class is hooked once:
a byte bar made while `downloads_reported_to(listener)` is active in a thread reports
`listener(bytes_done, bytes_total)` on every update, also from the worker threads that download the files.
Bars are counted here rather than read from tqdm, which stops counting when bars are disabled (no terminal).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[[int, int], None]

_listener: contextvars.ContextVar[Listener | None] = contextvars.ContextVar("download_listener", default=None)
_preparation: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "preparation_listener", default=None
)
_hook_lock = threading.Lock()


@contextmanager
def downloads_reported_to(listener: Listener) -> Iterator[None]:
    """Hub downloads started in this thread inside the block report their bytes to `listener`."""
    _hook_hub_bars()
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


@contextmanager
def preparation_reported_to(listener: Callable[[str], None]) -> Iterator[None]:
    """Preparation steps started in this thread inside the block tell `listener` what they do."""
    token = _preparation.set(listener)
    try:
        yield
    finally:
        _preparation.reset(token)


def report_preparation(text: str) -> None:
    log.info(text)
    listener = _preparation.get()
    if listener is not None:
        listener(text)


def _hook_hub_bars() -> None:
    from huggingface_hub.utils import tqdm as hub_bar

    with _hook_lock:
        if getattr(hub_bar, "_reports_downloads", False):
            return
        original_init, original_update = hub_bar.__init__, hub_bar.update

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            listener = _listener.get()
            # The transfer bar counts network bytes against a made-up total; the others count file bytes.
            wanted = kwargs.get("unit") == "B" and not str(kwargs.get("name") or "").endswith(".transfer")
            self._listener = listener if wanted else None
            self._bytes_done = 0
            self._count_lock = threading.Lock()  # files finish on several threads
            # Updates come from worker threads: run the listener in this thread's context (a copy per
            # call, since one context cannot be entered by two threads at once).
            self._context = contextvars.copy_context()

        def update(self: Any, n: float | None = 1) -> Any:
            result = original_update(self, n)
            listener = getattr(self, "_listener", None)
            if listener is not None:
                with self._count_lock:
                    self._bytes_done += int(n or 0)
                    total = max(int(self.total or 0), self._bytes_done)
                    self._context.copy().run(listener, self._bytes_done, total)
            return result

        hub_bar.__init__ = init
        hub_bar.update = update
        hub_bar._reports_downloads = True
