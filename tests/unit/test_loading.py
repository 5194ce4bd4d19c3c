"""Loads in one process take turns: diffusers patches torch.nn for the whole process while it loads."""

import threading

from studio.core.models import ModelSource, load_weights


def test_two_loads_at_once_take_turns(tmp_path):
    first_inside, release = threading.Event(), threading.Event()
    inside: list[str] = []
    overlapped: list[bool] = []

    def loader(name: str, hold: bool):
        def load(local_only: bool) -> str:
            overlapped.append(bool(inside))
            inside.append(name)
            if hold:
                first_inside.set()
                release.wait(10)
            inside.remove(name)
            return name

        return load

    source = ModelSource("tiny", str(tmp_path), "folder")
    first = threading.Thread(target=load_weights, args=(source, True, loader("first", True)))
    first.start()
    assert first_inside.wait(10)
    second = threading.Thread(target=load_weights, args=(source, True, loader("second", False)))
    second.start()
    second.join(0.2)  # it waits for the first: still waiting after a fifth of a second
    assert second.is_alive() and inside == ["first"]
    release.set()
    first.join(10)
    second.join(10)
    assert overlapped == [False, False]
