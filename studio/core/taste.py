"""A person's taste, learnt from the pairs they rate: which of two images they like better.

- Each image is described by its **look** (`look_of`): colour (Lab and RGB means), saturation, contrast,
  brightness, sharpness and palette, 18 numbers any image has, with no model weights to load; and, where
  an image encoder is already in the cache (an IP-Adapter's CLIP), by what it **sees** (`Seen`): its image
  embedding reduced to 16 numbers by a fixed random projection, which tells content and composition apart
  where the look cannot (a profile keeps the one encoder its first seen pair came from).
- The profile is a Bradley–Terry model over those descriptors: P(a beats b) = σ(w · (z(a) − z(b))), with
  z the descriptors standardised over the profile's own images and w fitted by ridge-regularised logistic
  regression (Newton's method: 40 pairs take about a millisecond). A soft vote (picking one image of a
  grid over its neighbours) counts as a pair of smaller weight.
- `held_out_accuracy` says how well the profile predicts pairs it was not fitted on (k-fold), which the
  Personalize tab shows as it learns.
- `Profile.score` ranks any image by it: how a run steered by `--p CODE` picks the best of its drafts.
- `Profile.taste_embedding` is the encoder's mean embedding of the liked images minus that of the disliked:
  where the IP-Adapter it came from is loaded, a steered run takes it as an image prompt at a low weight.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import secrets
from collections.abc import Callable, Sequence
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
SEEN_SIZE = 16  # what an image encoder sees, projected: few weights for 40 pairs to fit
MAX_EMBEDDING_SIZE = 4096  # an encoder's full embedding, kept for the taste embedding (CLIP's are ≤ 1280)
TASTE_EMBEDDING_PAIRS = 4  # seen pairs before the liked-minus-disliked direction means anything
PAIRS_WANTED = 40  # what a profile is "about" done at, as Midjourney asks
RIDGE = 1.0  # the fit's pull towards no preference: with few pairs the profile stays modest
SOFT_VOTE = 0.25  # what picking an image of a grid over a neighbour weighs against a rated pair
MAX_PAIRS = 2000  # per profile: a file stays small (each pair is at most 70 numbers)
MAX_PROFILE_BYTES = 4 * 1024**2
MAX_NAME_CHARS = 60
MAX_ENCODER_CHARS = 300  # an image encoder's name: a hub id or a folder's, and its subfolder
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


# -- what an image encoder sees ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What the image encoder named `encoder` sees of an image: its embedding, projected to `SEEN_SIZE`
    (`values`), and whole (`embedding`, as the IP-Adapter reads it)."""

    encoder: str
    values: tuple[float, ...]
    embedding: tuple[float, ...] = ()


Sight = Callable[[Image.Image], "Seen | None"]  # an image encoder in the cache (None: not seen this time)


def seen_by(encoder: str, embedding: np.ndarray) -> Seen:
    """An image embedding as a profile keeps it: unit length, then a random projection fixed by the
    encoder's name and width (the same numbers on every machine), which keeps distances roughly."""
    whole = np.asarray(embedding, dtype=np.float64).reshape(-1)[:MAX_EMBEDDING_SIZE]
    vector = whole / max(float(np.linalg.norm(whole)), 1e-12)
    seed = int.from_bytes(hashlib.sha256(f"{encoder}/{vector.size}".encode()).digest()[:8], "big")
    projection = np.random.default_rng(seed).standard_normal((vector.size, SEEN_SIZE))
    return Seen(encoder, tuple(float(v) for v in vector @ projection), tuple(float(v) for v in whole))


# -- the fit -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One judgement: `better` was liked over `worse` (their looks, and what the profile's encoder saw of
    them where it was in the cache: empty where not), weighing `weight`."""

    better: tuple[float, ...]
    worse: tuple[float, ...]
    weight: float = 1.0
    better_seen: tuple[float, ...] = ()
    worse_seen: tuple[float, ...] = ()


def _features(look: Sequence[float], seen: Sequence[float], size: int) -> np.ndarray:
    """One image's descriptor: its look, then what was seen of it (NaN where nothing was)."""
    row = np.full(size, np.nan)
    row[: len(LOOK_FEATURES)] = look
    if seen and size > len(LOOK_FEATURES):
        row[len(LOOK_FEATURES) :] = seen
    return row


@dataclass(frozen=True)
class Fit:
    """What the pairs taught: standardise a descriptor by `centre`/`scale`, then `weights` · z is the
    liking. A part of it nothing was seen of counts as the average image's (z = 0)."""

    centre: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    @property
    def sees(self) -> bool:
        return self.weights.size > len(LOOK_FEATURES)

    def liking(self, look: Sequence[float], seen: Sequence[float] = ()) -> float:
        z = (_features(look, seen, self.weights.size) - self.centre) / self.scale
        return float(np.nan_to_num(z) @ self.weights)


def fit_pairs(pairs: Sequence[Pair], ridge: float = RIDGE) -> Fit:
    """The ridge-regularised Bradley–Terry weights for `pairs` (no pairs: no preference at all); over the
    look and what was seen where any pair was seen."""
    seen = any(pair.better_seen or pair.worse_seen for pair in pairs)
    size = len(LOOK_FEATURES) + (SEEN_SIZE if seen else 0)
    if not pairs:
        return Fit(np.zeros(size), np.ones(size), np.zeros(size))
    rows = np.array(
        [
            _features(look, seen_values, size)
            for pair in pairs
            for look, seen_values in ((pair.better, pair.better_seen), (pair.worse, pair.worse_seen))
        ]
    )
    centre, scale = np.nanmean(rows, 0), np.nanstd(rows, 0)
    scale = np.where(scale > 1e-9, scale, 1.0)  # a feature that never varied teaches nothing
    z = np.nan_to_num((rows - centre) / scale)  # what was not seen: the average image's
    differences, counts = z[0::2] - z[1::2], np.array([pair.weight for pair in pairs])
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
        right += sum(
            fit.liking(pair.better, pair.better_seen) > fit.liking(pair.worse, pair.worse_seen)
            for pair in tested
        )
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
    encoder: str = ""  # the image encoder its pairs' `seen` come from ("": none yet)
    liked: tuple[float, ...] = ()  # that encoder's mean embedding of the images liked in seen pairs
    disliked: tuple[float, ...] = ()  # ... and of those liked less
    seen_weight: float = 0.0  # what the seen pairs behind those means weigh together

    @functools.cached_property
    def fit(self) -> Fit:
        """Fitted when first scored: listing, loading and saving profiles fit nothing."""
        return fit_pairs(self.pairs)

    @property
    def rated(self) -> int:
        """Pairs rated on the Personalize tab (soft votes from grids aside)."""
        return sum(pair.weight >= 1 for pair in self.pairs)

    def score(self, image: Image.Image, sight: Sight | None = None) -> float:
        """How much this person would like `image`: higher is better; only comparable between images
        scored with the same `sight` (or none)."""
        seen = self.seen(image, sight) if self.fit.sees else None
        return self.fit.liking(look_of(image), seen.values if seen else ())

    def rate(
        self,
        better: Image.Image,
        worse: Image.Image,
        weight: float = 1.0,
        seen: tuple[Seen | None, Seen | None] = (None, None),
    ) -> Profile:
        """This profile with one more judgement (the oldest go once there are `MAX_PAIRS`); with what an
        image encoder `seen` of both, where it is this profile's encoder (or the profile has none yet)."""
        profile = self
        if not self.encoder and seen[0] is not None:
            profile = replace(self, encoder=seen[0].encoder)
        liked, disliked = (s if s is not None and s.encoder == profile.encoder else None for s in seen)
        pair = Pair(
            tuple(look_of(better)),
            tuple(look_of(worse)),
            weight,
            liked.values if liked else (),
            disliked.values if disliked else (),
        )
        profile = replace(profile, pairs=(*self.pairs, pair)[-MAX_PAIRS:])
        if liked and disliked and len(liked.embedding) == len(profile.liked or liked.embedding):
            # The means weigh at most the pairs a profile keeps: past them, older judgements fade
            before = min(profile.seen_weight, MAX_PAIRS - weight)
            total = before + weight

            def mean(old: tuple[float, ...], new: tuple[float, ...]) -> tuple[float, ...]:
                return tuple((np.array(old or new) * before + np.array(new) * weight) / total)

            profile = replace(
                profile,
                liked=mean(profile.liked, liked.embedding),
                disliked=mean(profile.disliked, disliked.embedding),
                seen_weight=total,
            )
        return profile

    def seen(self, image: Image.Image, sight: Sight | None) -> Seen | None:
        """What `sight` sees of `image`, where it is this profile's encoder; else None."""
        if sight is None or not self.encoder:
            return None
        seen = sight(image)
        return seen if seen is not None and seen.encoder == self.encoder else None

    def taste_embedding(self) -> np.ndarray | None:
        """The direction from what this person likes less to what they like, in their encoder's embedding
        space, as long as the liked images' mean embedding (an image prompt of that size); None before
        `TASTE_EMBEDDING_PAIRS` seen pairs, or where liked and disliked look alike to the encoder."""
        if self.seen_weight < TASTE_EMBEDDING_PAIRS:
            return None
        liked = np.array(self.liked)
        direction = liked - np.array(self.disliked)
        length = float(np.linalg.norm(direction))
        if length < 1e-9:
            return None
        return direction / length * float(np.linalg.norm(liked))

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
        def written(pair: Pair) -> dict:
            fields = {"better": pair.better, "worse": pair.worse}
            if pair.better_seen or pair.worse_seen:
                fields |= {"better_seen": pair.better_seen, "worse_seen": pair.worse_seen}
            return {key: [round(v, 5) for v in values] for key, values in fields.items()} | {
                "weight": pair.weight
            }

        return json.dumps(
            {"format": FORMAT, "descriptor": LOOK, "code": self.code, "name": self.name,
             "created": self.created, "encoder": self.encoder, "pairs": [written(p) for p in self.pairs],
             "liked": [round(v, 6) for v in self.liked], "disliked": [round(v, 6) for v in self.disliked],
             "seen_weight": self.seen_weight}
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
        encoder = data.get("encoder", "")
        if (
            not isinstance(code, str)
            or not is_code(code)
            or not isinstance(name, str)
            or not isinstance(encoder, str)
            or len(encoder) > MAX_ENCODER_CHARS
            or not isinstance(pairs, list)
        ):
            raise InvalidRequest("This profile file is damaged: its code, name or pairs cannot be read.")
        if len(pairs) > MAX_PAIRS:
            raise InvalidRequest(f"A profile holds at most {MAX_PAIRS} pairs; this one has {len(pairs)}.")
        read = tuple(_pair(item) for item in pairs)
        liked, disliked, seen_weight = _taste_means(data)
        created = str(data.get("created", ""))
        return cls(code, name[:MAX_NAME_CHARS], read, created, encoder, liked, disliked, seen_weight)


def _taste_means(data: dict) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    try:
        liked, disliked = (tuple(float(v) for v in data.get(key, [])) for key in ("liked", "disliked"))
        seen_weight = float(data.get("seen_weight", 0.0))
    except (TypeError, ValueError):
        liked, disliked, seen_weight = (), (), math.nan
    numbers = [*liked, *disliked, seen_weight]
    if (
        len(liked) != len(disliked)
        or len(liked) > MAX_EMBEDDING_SIZE
        or not all(map(math.isfinite, numbers))
        or not 0 <= seen_weight <= MAX_PAIRS  # the weight of the pairs behind the means, each at most 1
    ):
        raise InvalidRequest("This profile file is damaged: its taste embedding cannot be read.")
    return liked, disliked, seen_weight


def _pair(item: object) -> Pair:
    sizes = {"better": len(LOOK_FEATURES), "worse": len(LOOK_FEATURES), "better_seen": SEEN_SIZE,
             "worse_seen": SEEN_SIZE, "weight": None}  # fmt: skip
    try:
        fields = {key: item.get(key, [] if size else 1.0) for key, size in sizes.items()}  # type: ignore[union-attr]
        read = {
            key: tuple(float(v) for v in value) if sizes[key] else float(value)
            for key, value in fields.items()
        }
        numbers = [v for value in read.values() for v in (value if isinstance(value, tuple) else (value,))]
        whole = all(len(read[key]) == size or (key.endswith("seen") and not read[key])
                    for key, size in sizes.items() if size)  # fmt: skip
    except (TypeError, ValueError, AttributeError):
        whole, numbers = False, []
    if not whole or not all(math.isfinite(v) for v in numbers) or not 0 < read["weight"] <= 1:
        raise InvalidRequest("This profile file is damaged: one of its pairs cannot be read.")
    return Pair(**read)


def created_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
