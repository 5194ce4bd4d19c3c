"""Taste profiles (studio/core/taste.py): the look of an image, and the Bradley–Terry fit of rated pairs,
tried with synthetic raters who like redder or brighter images."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from studio.core.errors import InvalidRequest
from studio.core.taste import LOOK_FEATURES, PAIRS_WANTED, Profile, held_out_accuracy, look_of, new_code


def picture(draw: random.Random) -> Image.Image:
    """A varied picture: a background colour, a few coloured shapes, sometimes blurred."""
    image = Image.new("RGB", (128, 96), tuple(draw.randrange(256) for _ in range(3)))
    pen = ImageDraw.Draw(image)
    for _ in range(draw.randrange(1, 6)):
        x, y = draw.randrange(128), draw.randrange(96)
        pen.ellipse((x, y, x + draw.randrange(10, 60), y + draw.randrange(10, 60)),
                    fill=tuple(draw.randrange(256) for _ in range(3)))  # fmt: skip
    return image.filter(ImageFilter.GaussianBlur(draw.choice([0, 0, 2, 5])))


def redness(image: Image.Image) -> float:
    rgb = np.asarray(image, dtype=np.float64)
    return float((rgb[..., 0] - rgb[..., 1:].mean(-1)).mean())


def brightness(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L"), dtype=np.float64).mean())


RATERS = {"redder": redness, "brighter": brightness}


def rated_profile(taste, pairs: int, seed: int) -> Profile:
    draw, profile = random.Random(seed), Profile(new_code())
    for _ in range(pairs):
        a, b = picture(draw), picture(draw)
        profile = profile.rate(a, b) if taste(a) > taste(b) else profile.rate(b, a)
    return profile


@pytest.mark.parametrize("rater", list(RATERS))
def test_forty_rated_pairs_predict_a_look_based_raters_choices_on_new_pairs(rater):
    taste = RATERS[rater]
    profile = rated_profile(taste, PAIRS_WANTED, seed=1)
    draw = random.Random(99)  # pairs the profile never saw
    trials = [(picture(draw), picture(draw)) for _ in range(150)]
    right = sum((profile.score(a) > profile.score(b)) == (taste(a) > taste(b)) for a, b in trials)
    assert right / len(trials) >= 0.85
    summary = profile.summary()
    assert summary["pairs"] == PAIRS_WANTED and summary["accuracy"] >= 0.8  # what the tab shows as it learns


def test_held_out_accuracy_needs_enough_pairs_and_a_random_rater_stays_near_chance():
    assert Profile(new_code()).summary()["accuracy"] is None
    assert rated_profile(redness, 6, seed=2).summary()["accuracy"] is None
    coin = random.Random(5)
    random_rater = rated_profile(lambda image: coin.random(), 60, seed=3)
    assert held_out_accuracy(random_rater.pairs) < 0.75


def test_the_look_is_the_same_for_the_same_image_and_follows_colour_and_light():
    dark_blue, bright_red = (
        Image.new("RGB", (64, 64), (20, 30, 120)),
        Image.new("RGB", (64, 64), (230, 60, 50)),
    )
    assert look_of(dark_blue).shape == (len(LOOK_FEATURES),)
    np.testing.assert_array_equal(look_of(bright_red), look_of(bright_red.copy()))
    lightness, red_green = LOOK_FEATURES.index("lightness"), LOOK_FEATURES.index("red-green")
    assert look_of(bright_red)[lightness] > look_of(dark_blue)[lightness]
    assert look_of(bright_red)[red_green] > 40 > look_of(dark_blue)[red_green]
    # A grey picture is all grey in the palette; the reds sector holds the red one
    grey = look_of(Image.new("RGB", (32, 32), (128, 128, 128)))
    assert grey[LOOK_FEATURES.index("greys")] == 100


def test_a_soft_vote_weighs_less_than_a_rated_pair_and_is_not_counted_as_one():
    red, blue = Image.new("RGB", (32, 32), (200, 40, 40)), Image.new("RGB", (32, 32), (40, 40, 200))
    profile = Profile(new_code()).rate(red, blue, weight=0.25)
    assert profile.summary()["pairs"] == 0 and profile.summary()["soft_votes"] == 1
    assert profile.score(red) > profile.score(blue)
    strong = Profile(new_code()).rate(red, blue)
    assert strong.score(red) - strong.score(blue) > profile.score(red) - profile.score(blue)


def test_a_profile_file_reads_back_the_same_and_damaged_or_foreign_files_are_refused():
    profile = rated_profile(brightness, 12, seed=4)
    again = Profile.from_json(profile.to_json())
    assert again.code == profile.code and len(again.pairs) == 12
    image = picture(random.Random(7))
    assert again.score(image) == pytest.approx(profile.score(image), abs=1e-3)
    data = json.loads(profile.to_json())
    for damaged, words in [
        (b"\x89PNG not json", "not a studio profile"),
        (json.dumps({**data, "format": "other"}), "not a studio profile"),
        (json.dumps({**data, "descriptor": "clip/9"}), "another version"),
        (json.dumps({**data, "code": "../../etc"}), "damaged"),
        (json.dumps({**data, "pairs": [{"better": [1.0], "worse": [2.0]}]}), "damaged"),
        (json.dumps({**data, "pairs": [{**data["pairs"][0], "weight": float("nan")}]}), "damaged"),
        ("x" * (3 * 1024**2), "too large"),
    ]:
        with pytest.raises(InvalidRequest, match=words):
            Profile.from_json(damaged)
