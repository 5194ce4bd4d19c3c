"""Only the newest request renders: a waiting request is replaced by a newer one; the one in hand finishes."""

import threading

from studio.core.latest_only import LatestOnly
from tests.conditions import wait_until


def in_thread(gate: LatestOnly, visitor: str, turns: dict, name: str, hold: threading.Event | None = None):
    def take() -> None:
        with gate.turn(visitor) as turn:
            turns[name] = turn
            if hold is not None and turn.mine:
                hold.wait(10)

    thread = threading.Thread(target=take)
    thread.start()
    return thread


def test_a_request_waiting_is_replaced_by_a_newer_one_and_the_one_in_hand_finishes():
    gate, turns, release = LatestOnly(), {}, threading.Event()
    first = in_thread(gate, "ana", turns, "first", release)
    wait_until(lambda: "first" in turns)
    second = in_thread(gate, "ana", turns, "second")
    wait_until(lambda: gate.pending("ana") == 2)
    third = in_thread(gate, "ana", turns, "third")
    second.join(10)  # replaced: it returns at once, while the first is still being made
    assert not turns["second"].mine and "third" not in turns
    release.set()
    for thread in (first, third):
        thread.join(10)
    assert turns["first"].mine and turns["third"].mine
    assert turns["third"].skipped == 1, "the frame says how many edits it made stale"
    assert gate.pending("ana") == 0


def test_visitors_do_not_wait_for_each_other():
    gate, turns, release = LatestOnly(), {}, threading.Event()
    ana = in_thread(gate, "ana", turns, "ana", release)
    wait_until(lambda: "ana" in turns)
    ben = in_thread(gate, "ben", turns, "ben")
    ben.join(10)
    assert turns["ben"].mine and not ben.is_alive()
    release.set()
    ana.join(10)


def test_a_lone_request_renders_at_once():
    gate = LatestOnly()
    with gate.turn("ana") as turn:
        assert turn.mine and turn.skipped == 0
    assert gate.pending("ana") == 0
