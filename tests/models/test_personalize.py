"""Steering by a taste profile (`--p CODE`): each image is the best of its drafts by the profile, on the
machine's default backend, and reproduces from its PNG."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import numpy as np
import pytest

from pipelines.diffusion import draft_seed
from pipelines.parts.image_prompts import TASTE_SCALE, ImagePromptAdapters, resident_sight, seen_now
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import InvalidRequest
from studio.core.history import History
from studio.core.metadata import read_parameters
from studio.core.models import resolve_model
from studio.core.requests import parse_request
from studio.core.taste import PAIRS_WANTED, SEEN_SIZE, TASTE_EMBEDDING_PAIRS, Profile
from tests.matrix.cells import TASKS, values_for
from tests.unit.test_taste import rated_profile, redness, stripes


@pytest.fixture(scope="module")
def likes_red() -> Profile:
    """A profile from 40 pairs rated by someone who likes redder pictures."""
    return rated_profile(redness, PAIRS_WANTED, seed=11)


def test_a_profile_makes_the_kind_of_image_it_likes_more_often_and_each_reproduces_from_its_png(
    cache, fast_decoder_presets, tiny_sd, likes_red, tmp_path
):
    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    values = {"prompt": "a lighthouse", "model": str(tiny_sd), "steps": 2, "num_images": 4, "seed": 21}
    plain = pipeline(parse_request(TextToImageRequest, values))
    steered_values = {**values, "profile": likes_red.code, "taste": likes_red, "drafts": 4}
    steered = pipeline(parse_request(TextToImageRequest, steered_values))
    reds, plain_reds = [redness(r.image) for r in steered], [redness(r.image) for r in plain]
    assert np.mean(reds) > np.mean(plain_reds)
    assert sum(red > plain_red for red, plain_red in zip(reds, plain_reds, strict=True)) >= 2
    assert all(red >= plain_red - 0.5 for red, plain_red in zip(reds, plain_reds, strict=True))

    # Each image records the profile and the seed of the draft it is: that seed alone makes it again
    saved = [read_parameters(History(tmp_path).save(r.image, r.parameters)) for r in steered]
    assert all(p.extras["personalize"] == likes_red.code and p.extras["drafts"] == 4 for p in saved)
    assert [p.seed for p in saved] != [21, 22, 23, 24], "some image is a draft other than the first"
    chosen = saved[int(np.argmax([p.seed != 21 + i for i, p in enumerate(saved)]))]
    [again] = pipeline(parse_request(TextToImageRequest, {**values, "num_images": 1, "seed": chosen.seed}))
    index = saved.index(chosen)
    assert np.array_equal(np.asarray(again.image), np.asarray(steered[index].image))


def test_a_profile_named_but_not_looked_up_is_refused_plainly(cache, fast_decoder_presets, tiny_sd):
    """Only the studio (which knows who asks) looks a code up; a request that reaches a task with a code
    and no profile says so instead of making images unsteered."""
    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    request = parse_request(
        TextToImageRequest, {"prompt": "a lighthouse", "model": str(tiny_sd), "profile": "abcdefgh"}
    )
    with pytest.raises(InvalidRequest, match="Personalize tab"):
        pipeline(request)


def test_an_ip_adapter_in_the_cache_is_the_profiles_second_descriptor_and_steering_uses_it(
    cache, fast_decoder_presets, tiny_sd
):
    """With an IP-Adapter loaded (as an image prompt loads it), ratings keep what its image encoder sees
    and a steered run scores its drafts by it too; with none loaded, nothing is loaded for it. (How well
    an encoder's view teaches a profile is the unit tests' stand-in encoder's to show: a tiny random CLIP
    sees little.)"""
    assert resident_sight(cache) is None
    adapters = ImagePromptAdapters(cache, fast_decoder_presets, None)
    with cache.lease() as lease:
        base = lease.base_model(resolve_model(str(tiny_sd), fast_decoder_presets))
        adapters.adapter(lease, base, adapters.preset(base, "style"))
    sight = resident_sight(cache)
    draw = random.Random(4)
    first, second = stripes(draw, across=True), stripes(draw, across=False)
    assert sight(first) == sight(first.copy()) and sight(first) != sight(second)
    assert len(sight(first).values) == SEEN_SIZE

    profile = rated_profile(redness, 12, seed=5)  # rated before any encoder was loaded
    for _ in range(12):
        a, b = stripes(draw, across=True), stripes(draw, across=False)
        profile = (
            profile.rate(a, b, seen=(sight(a), sight(b)))
            if redness(a) > redness(b)
            else profile.rate(b, a, seen=(sight(b), sight(a)))
        )
    assert profile.encoder == sight(first).encoder and profile.fit.sees
    assert profile.score(first, sight) != profile.score(first)  # what it sees counts

    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    values = {"prompt": "a lighthouse", "model": str(tiny_sd), "steps": 2, "seed": 3, "profile": profile.code}
    [steered] = pipeline(parse_request(TextToImageRequest, {**values, "taste": profile, "drafts": 3}))
    drafts = [
        pipeline(parse_request(TextToImageRequest, {**values, "profile": None, "seed": draft_seed(3, k)}))[0]
        for k in range(3)
    ]
    scores = [profile.score(draft.image, sight) for draft in drafts]
    assert np.array_equal(np.asarray(steered.image), np.asarray(drafts[int(np.argmax(scores))].image))


def seeing_profile(cache, presets, tiny_sd) -> Profile:
    """A profile rated with the tiny style IP-Adapter loaded into `cache`: it has a taste embedding."""
    adapters = ImagePromptAdapters(cache, presets, None)
    with cache.lease() as lease:
        base = lease.base_model(resolve_model(str(tiny_sd), presets))
        adapters.adapter(lease, base, adapters.preset(base, "style"))
    sight, draw = resident_sight(cache), random.Random(6)
    profile = Profile("tastetst")
    for _ in range(TASTE_EMBEDDING_PAIRS + 2):
        a, b = stripes(draw, across=True), stripes(draw, across=False)
        profile = (
            profile.rate(a, b, seen=(sight(a), sight(b)))
            if redness(a) > redness(b)
            else profile.rate(b, a, seen=(sight(b), sight(a)))
        )
    assert profile.taste_embedding() is not None
    return profile


def test_the_taste_embedding_joins_a_run_where_its_ip_adapter_is_loaded_and_the_run_uses_torch(
    fast_decoder_presets, tiny_sd
):
    """On torch (a GPU's path) a steered run takes the profile's taste embedding at a low weight, records
    it, and makes the same pixels again; without the embedding the same drafts come out otherwise."""
    cache = ModelCache(resolve_device("cpu"), offline=True, backend="torch")
    profile = seeing_profile(cache, fast_decoder_presets, tiny_sd)
    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    values = {"prompt": "a lighthouse", "model": str(tiny_sd), "steps": 2, "seed": 5, "profile": profile.code}
    [steered] = pipeline(parse_request(TextToImageRequest, {**values, "taste": profile, "drafts": 2}))
    assert steered.parameters.extras["taste_weight"] == TASTE_SCALE
    [again] = pipeline(parse_request(TextToImageRequest, {**values, "taste": profile, "drafts": 2}))
    assert np.array_equal(np.asarray(again.image), np.asarray(steered.image))
    plain_profile = replace(profile, seen_weight=0.0)  # the same profile without a taste embedding
    [plain] = pipeline(parse_request(TextToImageRequest, {**values, "taste": plain_profile, "drafts": 2}))
    assert "taste_weight" not in plain.parameters.extras
    assert not np.array_equal(np.asarray(plain.image), np.asarray(steered.image))
    cache.clear(collect=False)


def test_on_openvino_the_taste_embedding_joins_only_runs_that_use_image_prompts_anyway(
    cache, fast_decoder_presets, tiny_sd
):
    """A CPU's steered run stays on OpenVINO rather than move to torch for a nudge; one with a style
    reference (on torch for it anyway) takes the taste embedding too."""
    profile = seeing_profile(cache, fast_decoder_presets, tiny_sd)
    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    values = {"prompt": "a lighthouse", "model": str(tiny_sd), "steps": 2, "seed": 5, "profile": profile.code,
              "taste": profile, "drafts": 2}  # fmt: skip
    [steered] = pipeline(parse_request(TextToImageRequest, values))
    assert (
        steered.parameters.extras["backend"] == "openvino" and "taste_weight" not in steered.parameters.extras
    )
    reference = stripes(random.Random(1), across=True)
    [styled] = pipeline(parse_request(TextToImageRequest, {**values, "style_images": (reference,)}))
    assert styled.parameters.extras["taste_weight"] == TASTE_SCALE
    assert (
        styled.parameters.extras["backend"] == "torch" and styled.parameters.extras["style_references"] == 1
    )


FULL_DECODE_CELLS = [
    ("txt2img", "plain", "sd"),
    ("txt2img", "tile", "sd"),
    ("vary", "plain", "sd"),
    ("creative_upscale", "plain", "sd"),
    ("txt2img", "plain", "sdxl"),
]


@pytest.mark.parametrize(("task", "feature", "family"), FULL_DECODE_CELLS)
def test_where_the_run_decodes_in_full_its_drafts_decode_fast_and_only_the_chosen_one_in_full(
    fast_decoder_presets, tiny_sd, tiny_sdxl, likes_red, monkeypatch, task, feature, family
):
    """On torch (a GPU's path: the full VAE by default) k drafts cost k fast decodes and one full decode,
    and the image is the very one the full VAE makes of the chosen draft's seed without --p (a tiled
    task's tiles put together as for any image)."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    cache = ModelCache(resolve_device("cpu"), offline=True, backend="torch")
    pipeline = TASKS[task](cache, fast_decoder_presets)
    model = {"sd": tiny_sd, "sdxl": tiny_sdxl}[family]
    values = values_for(task, feature, family, 64, {}) | {"model": str(model), "decoder": "full"}
    decodes = {"fast": 0, "full": 0}
    for name, autoencoder in (("fast", AutoencoderTiny), ("full", AutoencoderKL)):
        counted = autoencoder.decode

        def counting(self, *args, name=name, counted=counted, **kwargs):
            decodes[name] += 1
            return counted(self, *args, **kwargs)

        monkeypatch.setattr(autoencoder, "decode", counting)
    steered = {"profile": likes_red.code, "taste": likes_red, "drafts": 3}
    [result] = pipeline(parse_request(pipeline.request_type, values | steered))
    tiles = decodes["full"]
    assert tiles >= 1 and decodes == {"fast": 3 * tiles, "full": tiles}
    assert result.parameters.extras["decoder"] == "full"
    [again] = pipeline(parse_request(pipeline.request_type, values | {"seed": result.parameters.seed}))
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image))
    cache.clear(collect=False)


def test_a_rating_never_waits_for_a_run_that_holds_the_gpu(cache, fast_decoder_presets, tiny_sd):
    """Rating is an instant action: while a run holds the GPU it is kept by the look alone."""
    seeing_profile(cache, fast_decoder_presets, tiny_sd)  # an IP-Adapter loaded
    images = [stripes(random.Random(k), across=bool(k)) for k in range(2)]
    holding, done = threading.Event(), threading.Event()

    def run_holding_the_gpu():
        with cache.gpu_lock:
            holding.set()
            done.wait(30)

    worker = threading.Thread(target=run_holding_the_gpu)
    worker.start()
    try:
        assert holding.wait(30)
        assert seen_now(cache, images) == [None, None]
    finally:
        done.set()
        worker.join()
    assert all(seen is not None for seen in seen_now(cache, images))
