"""Only the newest request renders: one piece of work at a time for each visitor, and of their requests
waiting, the newest alone.

Live frames follow typing: by the time a frame is made, the requests that arrived meanwhile are stale but
one. A request that arrives while an older one waits replaces it (the older one gets no turn and returns at
once); the frame being made finishes (a one-step frame cannot be stopped more cheaply than finished).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Turn:
    mine: bool  # False: a newer request replaced this one before its turn came
    skipped: int = 0  # the visitor's requests replaced since their last turn, this one's turn included


class LatestOnly:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._tickets = itertools.count(1)
        self._newest: dict[str, int] = {}  # by visitor: the ticket of their newest request
        self._busy: set[str] = set()  # visitors whose request is being worked on
        self._skipped: dict[str, int] = {}
        self._inside: dict[str, int] = {}  # by visitor: their requests worked on or waiting

    @contextmanager
    def turn(self, visitor: str) -> Iterator[Turn]:
        """Wait while `visitor`'s previous request is worked on; `Turn.mine` says whether to work on this
        one (no newer request came meanwhile). The next request waits until this block ends."""
        with self._changed:
            ticket = next(self._tickets)
            self._newest[visitor] = ticket
            self._inside[visitor] = self._inside.get(visitor, 0) + 1
            self._changed.notify_all()  # a request waiting learns it is replaced
            while visitor in self._busy and self._newest[visitor] == ticket:
                self._changed.wait()
            if self._newest[visitor] != ticket:
                self._skipped[visitor] = self._skipped.get(visitor, 0) + 1
                turn = Turn(mine=False)
            else:
                self._busy.add(visitor)
                turn = Turn(mine=True, skipped=self._skipped.pop(visitor, 0))
        try:
            yield turn
        finally:
            with self._changed:
                self._inside[visitor] -= 1
                if not self._inside[visitor]:  # nothing of theirs waits: forget the visitor
                    del self._inside[visitor], self._newest[visitor]
                if turn.mine:
                    self._busy.discard(visitor)
                    self._changed.notify_all()

    def pending(self, visitor: str) -> int:
        """`visitor`'s requests being worked on or waiting."""
        with self._changed:
            return self._inside.get(visitor, 0)
