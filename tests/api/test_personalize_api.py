"""Taste profiles over the API: /rate and /profile, `--p CODE` in a prompt, each person's own profiles."""

from __future__ import annotations

import random

import pytest
from gradio_client import Client, handle_file

from studio.core.metadata import read_parameters
from tests.conftest import launch_app, studio_settings
from tests.unit.test_taste import picture, redness

pytestmark = pytest.mark.api
ANN, BO = ("ann", "pw-ann"), ("bo", "pw-bo")


@pytest.fixture(scope="module")
def two_people(tiny_sd, tiny_presets_dir, tmp_path_factory):
    settings = studio_settings(
        tiny_sd, tmp_path_factory.mktemp("outputs"), presets_dir=tiny_presets_dir, auth=(ANN, BO)
    )
    running = launch_app(settings)
    yield running
    running.demo.close()


def rated_pairs(client: Client, folder, count: int, profile: str = "") -> dict:
    """`count` pairs rated by someone who likes redder pictures; the last answer."""
    draw, answer = random.Random(3), {}
    for index in range(count):
        a, b = picture(draw), picture(draw)
        better, worse = (a, b) if redness(a) > redness(b) else (b, a)
        better.save(folder / f"better-{index}.png")
        worse.save(folder / f"worse-{index}.png")
        answer = client.predict(
            better=handle_file(str(folder / f"better-{index}.png")),
            worse=handle_file(str(folder / f"worse-{index}.png")),
            profile=profile or answer.get("code", ""),
            api_name="/rate",
        )
    return answer


def test_rating_pairs_makes_a_profile_that_steers_a_prompt_and_is_its_owners_alone(two_people, tmp_path):
    ann, bo = (Client(two_people.url, auth=who, verbose=False) for who in (ANN, BO))
    with pytest.raises(Exception, match="You have no profile yet"):
        ann.predict(profile="", api_name="/profile")

    answer = rated_pairs(ann, tmp_path, 12)
    code = answer["code"]
    assert answer["pairs"] == 12 and answer["pairs_wanted"] == 40 and 0 <= answer["accuracy"] <= 1
    summary = ann.predict(profile=code, api_name="/profile")
    assert ann.predict(profile="", api_name="/profile") == answer == summary

    # --p CODE in a prompt: each image the best of its drafts, recorded with the profile's code
    images, params = ann.predict(prompt=f"a lighthouse --p {code}", steps=1, seed=5, api_name="/txt2img")
    assert params[0]["extras"]["personalize"] == code and params[0]["extras"]["drafts"] == 4
    assert read_parameters(images[0]["image"]).extras["personalize"] == code

    # Another person can neither read it nor steer with it, and is told the same as for no profile at all
    for ask in (
        lambda: bo.predict(profile=code, api_name="/profile"),
        lambda: bo.predict(prompt=f"a lighthouse --p {code}", steps=1, api_name="/txt2img"),
        lambda: rated_pairs(bo, tmp_path, 1, profile=code),
    ):
        with pytest.raises(Exception, match=f"You have no profile '{code}'"):
            ask()
    unchanged = ann.predict(profile=code, api_name="/profile")
    assert unchanged["pairs"] == 12, "Bo's tries changed nothing of Ann's"
