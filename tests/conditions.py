"""Waiting on a condition of the server's own state (a count, a flag), where nothing signals it."""

from __future__ import annotations

import threading
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Return once `condition()` holds; fail after `timeout` seconds."""
    polled = threading.Event()  # never set: its wait is the pause between polls
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        polled.wait(0.005)
    raise AssertionError("the condition never held")
