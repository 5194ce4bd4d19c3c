"""/live against the launched studio: a frame, the same frame again, only a caller's newest request made."""

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from tests.conditions import FirstCallHeld, wait_until

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_a_frame_comes_back_with_its_parameters_and_the_same_settings_give_the_same_frame(client):
    frame, parameters, status = client.predict(prompt="a lighthouse --tile", seed=11, api_name="/live")
    again, _, _ = client.predict(prompt="a lighthouse --tile", seed=11, api_name="/live")
    assert parameters["task"] == "live" and parameters["seed"] == 11
    assert parameters["extras"]["tile"] and parameters["extras"]["backend"] == "openvino"
    assert "64×64" in status and " s" in status
    assert np.array_equal(pixels(frame), pixels(again))


def test_a_request_is_refused_in_words(client):
    with pytest.raises(Exception, match="Type a prompt first"):
        client.predict(prompt="  ", api_name="/live")
    with pytest.raises(Exception, match=r"Sketch strength \(strength\) must be between 0.05 and 1"):
        client.predict(prompt="a fox", strength=3, api_name="/live")


def test_a_waiting_request_is_dropped_when_a_newer_one_arrives(running_app, client):
    """While a frame is made, the caller's next request waits; a newer one replaces it, which returns no
    frame at once; the newest is made next and says how many it made stale."""
    turns, live = running_app.demo.studio.live_turns, running_app.demo.studio.runner.tasks["live"]
    with FirstCallHeld(live, "frame") as first_frame:  # held until the others are sent
        first = client.submit(prompt="a fox", seed=1, api_name="/live")
        assert first_frame.inside.wait(30)
        stale = client.submit(prompt="a fox in", seed=1, api_name="/live")
        wait_until(lambda: turns.pending(client.session_hash) == 2)
        newest = client.submit(prompt="a fox in snow", seed=1, api_name="/live")
        frame, parameters, status = stale.result(timeout=30)  # replaced while the first is still held
        assert frame is None and parameters is None and status.startswith("Replaced by a newer request")
        assert not first.done()
        first_frame.release()
        assert first.result(timeout=30)[1]["user_prompt"] == "a fox"
        frame, parameters, status = newest.result(timeout=30)
        assert parameters["user_prompt"] == "a fox in snow" and "1 stale edit skipped" in status
