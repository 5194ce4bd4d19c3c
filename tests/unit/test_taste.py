"""Taste profiles (studio/core/taste.py): the look of an image, and the Bradley–Terry fit of rated pairs,
tried with synthetic raters who like redder or brighter images."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from studio.core.errors import InvalidRequest
from studio.core.taste import (
    LOOK_FEATURES,
    MAX_PAIRS,
    MAX_PROFILE_BYTES,
    PAIRS_WANTED,
    SEEN_SIZE,
    TASTE_EMBEDDING_PAIRS,
    Profile,
    Seen,
    held_out_accuracy,
    look_of,
    new_code,
    seen_by,
)


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
        ("x" * (MAX_PROFILE_BYTES + 1), "too large"),
    ]:
        with pytest.raises(InvalidRequest, match=words):
            Profile.from_json(damaged)


# -- what an image encoder sees: a second descriptor, where one is in the cache --------------------------


def stripes(draw: random.Random, across: bool) -> Image.Image:
    """Two colours in stripes, across or down: the same look either way (colours, contrast, sharpness)."""
    colours = [tuple(draw.randrange(256) for _ in range(3)) for _ in range(2)]
    width = draw.choice([4, 8, 12])
    image = Image.new("RGB", (96, 96), colours[0])
    pen = ImageDraw.Draw(image)
    for start in range(0, 96, 2 * width):
        box = (0, start, 95, start + width - 1) if across else (start, 0, start + width - 1, 95)
        pen.rectangle(box, fill=colours[1])
    return image


def orientation_sight(image: Image.Image) -> Seen:
    """A stand-in for an image encoder that sees which way lines run (the look cannot tell)."""
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    across, down = np.abs(np.diff(grey, axis=0)).mean(), np.abs(np.diff(grey, axis=1)).mean()
    return seen_by("test-encoder", np.array([across - down, 1.0, *grey[::16, ::16].ravel() / 2550]))


def test_what_an_encoder_sees_teaches_a_profile_what_the_look_cannot():
    """Someone who likes stripes running across: the look alone guesses; with the encoder's view, 40
    pairs predict new pairs, and the file keeps the encoder and what it saw."""
    draw = random.Random(12)
    seeing, blind = Profile(new_code()), Profile(new_code())
    for _ in range(PAIRS_WANTED):
        liked, other = stripes(draw, across=True), stripes(draw, across=draw.random() < 0.2)
        seen = (orientation_sight(liked), orientation_sight(other))
        seeing, blind = seeing.rate(liked, other, seen=seen), blind.rate(liked, other)
    assert seeing.encoder == "test-encoder" and len(seeing.pairs[0].better_seen) == SEEN_SIZE
    trials = [(stripes(draw, across=True), stripes(draw, across=False)) for _ in range(60)]
    sees = sum(seeing.score(a, orientation_sight) > seeing.score(b, orientation_sight) for a, b in trials)
    guesses = sum(blind.score(a) > blind.score(b) for a, b in trials)
    assert sees / len(trials) >= 0.85 and guesses / len(trials) < 0.75
    again = Profile.from_json(seeing.to_json())
    assert again.encoder == "test-encoder"
    assert again.score(trials[0][0], orientation_sight) == pytest.approx(
        seeing.score(trials[0][0], orientation_sight), abs=1e-3
    )
    # Without the encoder in the cache the profile still scores, by the look (what it saw counts as average)
    assert np.isfinite(again.score(trials[0][0]))


def test_a_profile_keeps_to_one_encoder_and_pairs_rated_without_one_still_count():
    draw = random.Random(3)
    a, b = picture(draw), picture(draw)
    profile = rated_profile(redness, 10, seed=8).rate(a, b, seen=(orientation_sight(a), orientation_sight(b)))
    assert profile.encoder == "test-encoder" and profile.pairs[0].better_seen == ()

    def another(image: Image.Image) -> Seen:
        return Seen("other-encoder", (1.0,) * SEEN_SIZE)

    a, b = picture(draw), picture(draw)
    profile = profile.rate(a, b, seen=(another(a), another(b)))
    assert profile.encoder == "test-encoder" and profile.pairs[-1].better_seen == ()  # not mixed in
    assert len(profile.pairs) == 12 and profile.fit.sees
    np.testing.assert_allclose(seen_by("e", np.ones(8)).values, seen_by("e", np.ones(8) * 3).values)
    full = Profile(new_code(), pairs=profile.pairs[-2:-1] * MAX_PAIRS, encoder="test-encoder")
    assert len(full.to_json()) < MAX_PROFILE_BYTES  # a full profile still fits its file


def test_the_taste_embedding_points_from_what_was_liked_less_to_what_was_liked():
    draw = random.Random(21)
    profile = Profile(new_code())
    assert profile.taste_embedding() is None
    for count in range(TASTE_EMBEDDING_PAIRS):
        assert profile.taste_embedding() is None, f"after {count} seen pairs"
        a, b = stripes(draw, True), stripes(draw, False)
        profile = profile.rate(a, b, seen=(orientation_sight(a), orientation_sight(b)))
    taste = profile.taste_embedding()
    across = np.mean([orientation_sight(stripes(draw, True)).embedding for _ in range(20)], 0)
    down = np.mean([orientation_sight(stripes(draw, False)).embedding for _ in range(20)], 0)
    assert taste @ (across - down) > 0
    assert np.linalg.norm(taste) == pytest.approx(np.linalg.norm(profile.liked))
    again = Profile.from_json(profile.to_json())
    np.testing.assert_allclose(again.taste_embedding(), taste, atol=1e-4)
    data = json.loads(profile.to_json())
    for damaged in ({**data, "liked": data["liked"][:-1]}, {**data, "seen_weight": "lots"}):
        with pytest.raises(InvalidRequest, match="taste embedding"):
            Profile.from_json(json.dumps(damaged))


def test_a_damaged_taste_embedding_or_encoder_name_is_refused_not_cut():
    draw = random.Random(2)
    profile = Profile(new_code())
    for _ in range(TASTE_EMBEDDING_PAIRS):
        a, b = stripes(draw, True), stripes(draw, False)
        profile = profile.rate(a, b, seen=(orientation_sight(a), orientation_sight(b)))
    data = json.loads(profile.to_json())
    for damaged in ({**data, "seen_weight": MAX_PAIRS + 1}, {**data, "encoder": "x" * 1000}):
        with pytest.raises(InvalidRequest, match="damaged"):
            Profile.from_json(json.dumps(damaged))
    long_name = {**data, "encoder": "models/" + "a" * 150 + "/image_encoder"}
    assert Profile.from_json(json.dumps(long_name)).encoder == long_name["encoder"]  # kept whole


def test_a_full_profiles_taste_embedding_keeps_reading_back():
    """Past `MAX_PAIRS` seen pairs the means weigh no more than the pairs kept, so the file stays valid."""
    draw = random.Random(4)
    a, b = stripes(draw, True), stripes(draw, False)
    full = Profile(
        new_code(), encoder="test-encoder", liked=(1.0,) * 38, disliked=(0.0,) * 38, seen_weight=MAX_PAIRS
    )
    rated = full.rate(a, b, seen=(orientation_sight(a), orientation_sight(b)))
    assert rated.seen_weight == MAX_PAIRS
    assert Profile.from_json(rated.to_json()).seen_weight == MAX_PAIRS
