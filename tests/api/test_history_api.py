"""The history over the API: /history lists and searches, /history_item gives one result; each signed-in
user, and each browser session on a shared studio, sees their own; batch prompts land in it."""

import pytest
from gradio_client import Client

from tests.conftest import launch_app, studio_settings

pytestmark = pytest.mark.api


def listed(client: Client, **query) -> dict:
    _, line, data = client.predict(**query, api_name="/history")
    assert line.startswith("Page") or line == "Nothing here yet."
    return data


def test_history_lists_newest_first_searches_and_gives_each_item(running_app):
    client = Client(running_app.url, verbose=False)
    client.predict(prompt="an owl at night", seed=11, steps=2, api_name="/txt2img")
    client.predict(prompt="a lighthouse by day", seed=12, steps=2, api_name="/txt2img")
    newest = listed(client)
    assert newest["results"][0]["prompt"] == "a lighthouse by day" and newest["results"][0]["seed"] == 12
    owls = listed(client, text="OWL night")
    assert [r["prompt"] for r in owls["results"]] == ["an owl at night"]
    assert listed(client, task="upscale", text="owl")["total"] == 0
    file = owls["results"][0]["file"]
    image, text, fields = client.predict(file=file, api_name="/history_item")
    assert text.startswith("an owl at night\n") and fields["seed"] == 11 and image.endswith(".png")
    with pytest.raises(Exception, match="Pick a result"):
        client.predict(file="../../etc/passwd", api_name="/history_item")
    with pytest.raises(Exception, match=r"^Day: string should match pattern"):
        client.predict(day="yesterday", api_name="/history")


def test_a_batch_runs_a_prompt_per_line_and_each_lands_in_the_history(running_app):
    client = Client(running_app.url, verbose=False)
    lines = ["a red kite", "a green kite", "a blue kite"]
    images, made = client.predict(prompt="\n".join(lines), batch=True, seed=5, steps=2, api_name="/txt2img")
    assert [m["user_prompt"] for m in made] == lines and len(images) == 3
    assert {r["prompt"] for r in listed(client, text="kite")["results"]} >= set(lines)


@pytest.fixture(scope="module")
def shared_app(tiny_sd, tmp_path_factory):
    settings = studio_settings(
        tiny_sd, tmp_path_factory.mktemp("outputs"), auth=(("ann", "a-pass"), ("bo", "b-pass"))
    )
    running = launch_app(settings)
    yield running
    running.demo.close()


def test_with_logins_each_user_sees_only_their_own(shared_app):
    ann = Client(shared_app.url, auth=("ann", "a-pass"), verbose=False)
    bo = Client(shared_app.url, auth=("bo", "b-pass"), verbose=False)
    ann.predict(prompt="ann's secret garden", steps=1, api_name="/txt2img")
    bo.predict(prompt="bo's workshop", steps=1, api_name="/txt2img")
    assert [r["prompt"] for r in listed(ann)["results"]] == ["ann's secret garden"]
    [bos] = listed(bo)["results"]
    assert bos["prompt"] == "bo's workshop" and bos["file"].startswith("users/bo/")
    with pytest.raises(Exception, match="Pick a result"):
        ann.predict(file=bos["file"], api_name="/history_item")


def test_through_a_shared_address_each_session_sees_only_what_it_made(tiny_sd, tmp_path):
    settings = studio_settings(tiny_sd, tmp_path, host="0.0.0.0")
    running = launch_app(settings)
    try:
        url = f"http://127.0.0.1:{settings.port}/"
        first, second = Client(url, verbose=False), Client(url, verbose=False)
        first.predict(prompt="the first visitor's cat", steps=1, api_name="/txt2img")
        assert listed(second)["total"] == 0 and listed(first)["total"] == 1
    finally:
        running.demo.close()
