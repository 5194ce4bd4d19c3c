"""Waiting on a condition of the server's own state (a count, a flag), where nothing signals it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Return once `condition()` holds; fail after `timeout` seconds."""
    polled = threading.Event()  # never set: its wait is the pause between polls
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        polled.wait(0.005)
    raise AssertionError("the condition never held")


class FirstCallHeld:
    """`owner.name`'s first call held until `release()` (`inside` is set once it is held); later calls run
    as they are. Undone on leaving the block."""

    def __init__(self, owner: object, name: str) -> None:
        self.owner, self.name = owner, name
        self.inside, self.released = threading.Event(), threading.Event()

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> FirstCallHeld:
        original = getattr(self.owner, self.name)

        def held(*args: Any, **options: Any) -> Any:
            if not self.inside.is_set():
                self.inside.set()
                self.released.wait(30)
            return original(*args, **options)

        setattr(self.owner, self.name, held)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        delattr(self.owner, self.name)  # the instance's own stand-in goes: its class's method shows again
