"""The fair queue: round-robin over people, each person's runs in order, a cap per person, and several
runs at once where there are several replicas (studio/core/fair_queue.py, the runner's Turns)."""

from __future__ import annotations

import threading

import pytest

from studio.core.errors import InvalidRequest
from studio.core.fair_queue import Waiting, runs_of, serving_order
from studio.ui.runner import Turns
from tests.conditions import wait_until


def queue(*people: str) -> list[Waiting]:
    return [Waiting(ticket, person) for ticket, person in enumerate(people)]


def test_turns_go_round_robin_over_people_each_persons_in_the_order_they_came():
    assert serving_order(queue("a", "b", "a", "b", "a", "c"), {}) == [0, 1, 5, 2, 3, 4]
    # Ten of Ann's queued while her run holds the models: Bo's single run goes next, not eleventh
    waiting = [*queue(*["ann"] * 10), Waiting(10, "bo")]
    assert serving_order(waiting, {"ann": 1})[0] == 10
    assert serving_order([], {"ann": 3}) == []
    assert runs_of("ann", waiting, {99: "ann", 98: "bo"}) == 11


class Line:
    """Jobs taking turns in threads: each holds its turn until released, and says when it got it."""

    def __init__(self, turns: Turns) -> None:
        self.turns, self.started, self.told = turns, [], {}
        self.releases: dict[str, threading.Event] = {}
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def join(self, name: str, person: str) -> None:
        queued, release = threading.Event(), threading.Event()
        self.releases[name] = release

        def job() -> None:
            def waiting(ahead: int) -> None:
                self.told.setdefault(name, []).append(ahead)
                queued.set()

            with self.turns.taken(waiting, lambda: False, person):
                queued.set()
                with self._lock:
                    self.started.append(name)
                release.wait(10)

        self.threads.append(threading.Thread(target=job, daemon=True))
        self.threads[-1].start()
        assert queued.wait(5), f"{name} got its turn or was told its place"

    def until_started(self, count: int) -> None:
        wait_until(lambda: len(self.started) >= count)

    def finish(self, count: int) -> None:
        """Release every job, and wait until `count` have had their turn."""
        for release in self.releases.values():
            release.set()
        self.until_started(count)


def test_one_persons_queued_runs_do_not_hold_anothers_single_run_and_each_is_told_its_place():
    line = Line(Turns())
    line.join("ann-1", "ann")
    for n in range(2, 6):
        line.join(f"ann-{n}", "ann")
    line.join("bo-1", "bo")
    assert line.told["bo-1"] == [1], "Bo waits for the run before his only"
    assert line.told["ann-5"] == [4]
    line.releases["ann-1"].set()
    line.until_started(2)
    assert line.started == ["ann-1", "bo-1"]
    for name in ["bo-1", "ann-2", "ann-3", "ann-4", "ann-5"]:
        line.releases[name].set()
    line.until_started(6)
    assert line.started == ["ann-1", "bo-1", "ann-2", "ann-3", "ann-4", "ann-5"]


def test_several_replicas_take_several_turns_at_once():
    line = Line(Turns(capacity=2))
    line.join("ann-1", "ann")
    line.join("bo-1", "bo")
    line.until_started(2)
    line.join("ann-2", "ann")
    assert line.told["ann-2"] == [2]
    line.finish(3)


def test_a_person_at_the_cap_is_refused_plainly_and_others_are_not():
    turns = Turns(per_person=2)
    line = Line(turns)
    line.join("ann-1", "ann")
    line.join("ann-2", "ann")
    with (
        pytest.raises(
            InvalidRequest, match="You have 2 runs waiting or running, the most this studio queues"
        ),
        turns.taken(lambda ahead: None, lambda: False, "ann"),
    ):
        pass
    line.join("bo-1", "bo")
    line.finish(3)


def test_a_full_line_turns_runs_away_with_a_message():
    turns = Turns(most_waiting=1)
    line = Line(turns)
    line.join("ann-1", "ann")  # running
    line.join("ann-2", "ann")  # waiting: the line is full
    with (
        pytest.raises(InvalidRequest, match="The studio is busy: 1 runs are waiting already"),
        turns.taken(lambda ahead: None, lambda: False, "bo"),
    ):
        pass
    line.finish(2)
