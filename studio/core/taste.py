"""A person's taste, learnt from the pairs they rate: which of two images they like better.

- Each image is described by its **look** (`look_of`): colour (Lab and RGB means), saturation, contrast,
  brightness, sharpness and palette, 18 numbers any image has, with no model weights to load.
- The profile is a Bradley–Terry model over those descriptors: P(a beats b) = σ(w · (z(a) − z(b))), with
  z the descriptors standardised over the profile's own images and w fitted by ridge-regularised logistic
  regression (Newton's method: 40 pairs take about a millisecond). A soft vote (picking one image of a
  grid over its neighbours) counts as a pair of smaller weight.
- `held_out_accuracy` says how well the profile predicts pairs it was not fitted on (k-fold), which the
  Personalize tab shows as it learns.
- `Profile.score` ranks any image by it: how a run steered by `--p CODE` picks the best of its drafts.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageFilter

from studio.core.errors import InvalidRequest

FORMAT = "studio-profile/1"  # written into every profile file, so another JSON is not taken for one
LOOK = "look/1"  # the descriptor's name and version: a profile fitted on another cannot be scored by this
LOOK_FEATURES = (
    "lightness", "red-green", "yellow-blue", "contrast", "chroma", "chroma spread", "colourfulness",
    "dark share", "light share", "sharpness", "red", "green", "blue",
    "hue red-green", "hue yellow-blue", "hue spread", "greys",
)  # fmt: skip
NO_PROFILE = "off"  # asks for no steering, even with a profile turned on (Enhance makes the image again)
DEFAULT_PROFILE = "default"  # `--p` with no code: the asker's own (the one they turned on, else their newest)
PAIRS_WANTED = 40  # what a profile is "about" done at, as Midjourney asks
RIDGE = 1.0  # the fit's pull towards no preference: with few pairs the profile stays modest
SOFT_VOTE = 0.25  # what picking an image of a grid over a neighbour weighs against a rated pair
MAX_PAIRS = 2000  # per profile: a file stays small (each pair is 40 numbers)
MAX_PROFILE_BYTES = 2 * 1024**2
MAX_NAME_CHARS = 60
CODE_LETTERS = "abcdefghijklmnopqrstuvwxyz234567"  # as the style codes: typed without ambiguity
CODE_LENGTH = 8
_SIDE = 96  # the look is measured on a small copy: the same numbers for a draft and its finished image


# -- the look of an image ---------------------------------------------------------------------------------


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (0-1) to CIE Lab (D65)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array(
        [[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]], dtype=np.float64
    )
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def look_of(image: Image.Image) -> np.ndarray:
    """The image's look as `LOOK_FEATURES`: the same image always gives the same numbers."""
    small = image.convert("RGB")
    small.thumbnail((_SIDE, _SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(small, dtype=np.float64) / 255
    lab = _lab(rgb).reshape(-1, 3)
    lightness, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    red_green, yellow_blue = rgb[..., 0] - rgb[..., 1], (rgb[..., 0] + rgb[..., 1]) / 2 - rgb[..., 2]
    colourfulness = math.hypot(red_green.std(), yellow_blue.std()) + 0.3 * math.hypot(
        red_green.mean(), yellow_blue.mean()
    )  # Hasler and Süsstrunk's measure
    edges = np.asarray(small.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float64)[1:-1, 1:-1]
    sharpness = math.log1p(edges.var()) if edges.size else 0.0
    # The palette, in few numbers (a profile learns from few pairs): the colourful pixels' mean hue as a
    # direction in the a-b plane, how widely their hues spread, and how much of the image is grey.
    colourful = chroma > 12
    hues = np.stack([a[colourful], b[colourful]], -1) / chroma[colourful, None] if colourful.any() else None
    mean_hue = hues.mean(0) if hues is not None else np.zeros(2)
    palette = [*(mean_hue * 100), (1 - float(np.hypot(*mean_hue))) * 100, (1 - colourful.mean()) * 100]
    return np.array(
        [
            lightness.mean(), a.mean(), b.mean(), lightness.std(), chroma.mean(), chroma.std(),
            colourfulness * 100, (lightness < 25).mean(), (lightness > 75).mean(), sharpness,
            *(rgb.reshape(-1, 3).mean(0) * 100), *palette,
        ],
        dtype=np.float64,
    )  # fmt: skip


# -- the Bradley–Terry fit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One judgement: `better` was liked over `worse` (their looks), weighing `weight`."""

    better: tuple[float, ...]
    worse: tuple[float, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class Fit:
    """What the pairs taught: standardise a look by `centre`/`scale`, then `weights` · z is the liking."""

    centre: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    def liking(self, look: np.ndarray) -> float:
        return float(((look - self.centre) / self.scale) @ self.weights)


def fit_pairs(pairs: Sequence[Pair], ridge: float = RIDGE) -> Fit:
    """The ridge-regularised Bradley–Terry weights for `pairs` (no pairs: no preference at all)."""
    size = len(LOOK_FEATURES)
    if not pairs:
        return Fit(np.zeros(size), np.ones(size), np.zeros(size))
    looks = np.array([look for pair in pairs for look in (pair.better, pair.worse)], dtype=np.float64)
    centre, scale = looks.mean(0), looks.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)  # a feature that never varied teaches nothing
    better = (np.array([pair.better for pair in pairs]) - centre) / scale
    worse = (np.array([pair.worse for pair in pairs]) - centre) / scale
    differences, counts = better - worse, np.array([pair.weight for pair in pairs])
    weights = np.zeros(size)
    for _ in range(50):  # Newton's method on the logistic loss: a few steps reach the optimum
        won = 1 / (1 + np.exp(-(differences @ weights)))
        gradient = differences.T @ (counts * (won - 1)) + ridge * weights
        hessian = (differences * (counts * won * (1 - won))[:, None]).T @ differences + ridge * np.eye(size)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return Fit(centre, scale, weights)


def held_out_accuracy(pairs: Sequence[Pair], folds: int = 5) -> float | None:
    """How often a profile fitted without a pair predicts which of its images was liked (k-fold, the rated
    pairs only: a soft vote is a weaker judgement); None with too few pairs to tell."""
    rated = [pair for pair in pairs if pair.weight >= 1]
    if len(rated) < 2 * folds:
        return None
    right = 0
    for fold in range(folds):
        fit = fit_pairs(
            [pair for index, pair in enumerate(pairs) if index % folds != fold or pair.weight < 1]
        )
        tested = [pair for index, pair in enumerate(rated) if index % folds == fold]
        right += sum(fit.liking(np.array(pair.better)) > fit.liking(np.array(pair.worse)) for pair in tested)
    return right / len(rated)


# -- a profile -----------------------------------------------------------------------------------------------


def new_code() -> str:
    return "".join(secrets.choice(CODE_LETTERS) for _ in range(CODE_LENGTH))


def is_code(text: str) -> bool:
    return len(text) == CODE_LENGTH and all(letter in CODE_LETTERS for letter in text)


@dataclass(frozen=True)
class Profile:
    """A person's taste under a code (`--p CODE`): the pairs they rated, and the fit they give."""

    code: str
    name: str = ""
    pairs: tuple[Pair, ...] = ()
    created: str = ""  # ISO 8601, UTC

    @functools.cached_property
    def fit(self) -> Fit:
        """Fitted when first scored: listing, loading and saving profiles fit nothing."""
        return fit_pairs(self.pairs)

    @property
    def rated(self) -> int:
        """Pairs rated on the Personalize tab (soft votes from grids aside)."""
        return sum(pair.weight >= 1 for pair in self.pairs)

    def score(self, image: Image.Image) -> float:
        """How much this person would like `image`: higher is better; only comparable between images."""
        return self.fit.liking(look_of(image))

    def rate(self, better: Image.Image, worse: Image.Image, weight: float = 1.0) -> Profile:
        """This profile with one more judgement (the oldest go once there are `MAX_PAIRS`)."""
        pair = Pair(tuple(look_of(better)), tuple(look_of(worse)), weight)
        return replace(self, pairs=(*self.pairs, pair)[-MAX_PAIRS:])

    def summary(self) -> dict:
        """What the tab and the API show of it: its code and name, pairs rated, and held-out accuracy."""
        accuracy = held_out_accuracy(self.pairs)
        return {
            "code": self.code,
            "name": self.name,
            "pairs": self.rated,
            "soft_votes": len(self.pairs) - self.rated,
            "pairs_wanted": PAIRS_WANTED,
            "accuracy": None if accuracy is None else round(accuracy, 3),
        }

    # -- the file -------------------------------------------------------------------------------------------

    def to_json(self) -> str:
        pairs = [
            {"better": [round(v, 5) for v in pair.better], "worse": [round(v, 5) for v in pair.worse],
             "weight": pair.weight}
            for pair in self.pairs
        ]  # fmt: skip
        return json.dumps(
            {"format": FORMAT, "descriptor": LOOK, "code": self.code, "name": self.name,
             "created": self.created, "pairs": pairs}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str | bytes) -> Profile:
        """A profile read from its file (an export, or the store's own), checked: a damaged or foreign file
        is refused with a reason."""
        if len(text) > MAX_PROFILE_BYTES:
            raise InvalidRequest("This file is too large to be a profile.")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidRequest("This file is not a studio profile (export one from the Personalize tab).")
        if data.get("descriptor") != LOOK:
            raise InvalidRequest("This profile was made by another version of the studio and cannot be read.")
        code, name, pairs = data.get("code"), data.get("name", ""), data.get("pairs")
        if (
            not isinstance(code, str)
            or not is_code(code)
            or not isinstance(name, str)
            or not isinstance(pairs, list)
        ):
            raise InvalidRequest("This profile file is damaged: its code, name or pairs cannot be read.")
        if len(pairs) > MAX_PAIRS:
            raise InvalidRequest(f"A profile holds at most {MAX_PAIRS} pairs; this one has {len(pairs)}.")
        return cls(
            code, name[:MAX_NAME_CHARS], tuple(_pair(item) for item in pairs), str(data.get("created", ""))
        )


def _pair(item: object) -> Pair:
    size = len(LOOK_FEATURES)
    try:
        better, worse = item["better"], item["worse"]  # type: ignore[index]
        weight = float(item.get("weight", 1.0))  # type: ignore[union-attr]
        values = [float(v) for v in [*better, *worse, weight]]
    except (TypeError, KeyError, ValueError, AttributeError):
        values = []
    if len(values) != 2 * size + 1 or not all(math.isfinite(v) for v in values) or not 0 < values[-1] <= 1:
        raise InvalidRequest("This profile file is damaged: one of its pairs cannot be read.")
    return Pair(tuple(values[:size]), tuple(values[size : 2 * size]), values[-1])


def created_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
