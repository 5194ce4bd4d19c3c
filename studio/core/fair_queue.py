"""Whose run goes next when several wait: round-robin over people, so one person's ten queued runs never hold
another's single run behind all ten; each person's own runs go in the order they came. Pure decisions on
plain data; the job runner's `Turns` (studio/ui/runner.py) keeps the queue, its lock and its waiting."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Waiting:
    """A run in the queue: its ticket (the order it came in) and whose it is."""

    ticket: int
    person: str


def serving_order(waiting: Sequence[Waiting], last_served: Mapping[str, int]) -> list[int]:
    """The tickets of `waiting` (in the order they came) in the order they will be served: each next turn goes
    to the person whose run started longest ago (`last_served`: when each person's last run started; never
    is earliest), ties to whoever's run came first."""
    queues: dict[str, deque[int]] = {}
    for run in waiting:
        queues.setdefault(run.person, deque()).append(run.ticket)
    started = dict(last_served)
    clock = max(started.values(), default=0)
    order = []
    while queues:
        person = min(queues, key=lambda who: (started.get(who, -1), queues[who][0]))
        order.append(queues[person].popleft())
        clock += 1
        started[person] = clock
        if not queues[person]:
            del queues[person]
    return order


def runs_of(person: str, waiting: Sequence[Waiting], serving: Mapping[int, str]) -> int:
    """How many of `person`'s runs are waiting or running."""
    return sum(run.person == person for run in waiting) + sum(who == person for who in serving.values())
