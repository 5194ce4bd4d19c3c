"""Budgets, eviction, out-of-memory recovery and isolation of concurrent runs (CPU, tiny models)."""

import gc
import threading

import numpy as np
import pytest
import torch

from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import OutOfMemory
from studio.core.memory import GIB, MemoryBudget, Step, Unit, decode_bytes, plan_room
from studio.core.models import resolve_model
from studio.core.requests import parse_request

# -- budget arithmetic with fake units of known sizes ---------------------------------------------------


def units(*specs) -> list[Unit]:
    return [Unit(name, size, place, last_used, in_use) for name, size, place, last_used, in_use in specs]


def test_idle_models_leave_the_gpu_least_recently_used_first():
    fake = units(
        ("old", 4, "accelerator", 1.0, False),
        ("recent", 4, "accelerator", 3.0, False),
        ("middle", 4, "accelerator", 2.0, False),
    )
    plan = plan_room(fake, MemoryBudget(10, None), accelerator_needed=4)
    assert plan.steps == [Step("demote", "old"), Step("demote", "middle")]
    assert plan.fits


def test_demoted_models_are_dropped_from_ram_oldest_first_under_the_ram_budget():
    fake = units(
        ("on-gpu-old", 4, "accelerator", 1.0, False),
        ("in-ram-older", 3, "cpu", 0.5, False),
        ("in-ram-newer", 2, "cpu", 5.0, False),
        ("running", 6, "accelerator", 9.0, True),
    )
    plan = plan_room(fake, MemoryBudget(8, 5), accelerator_needed=2)
    assert plan.steps == [
        Step("demote", "on-gpu-old"),  # 10 + 2 > 8 on the GPU; the running model stays
        Step("drop", "in-ram-older"),  # then 3 + 2 + 4 > 5 in RAM
        Step("drop", "on-gpu-old"),  # 2 + 4 > 5 still; the newest stays
    ]
    assert plan.fits


def test_a_model_in_use_is_never_evicted_even_when_the_run_does_not_fit():
    fake = units(("running", 9, "accelerator", 1.0, True), ("idle", 1, "accelerator", 2.0, False))
    plan = plan_room(fake, MemoryBudget(8, None), accelerator_needed=1)
    assert plan.steps == [Step("demote", "idle")]
    assert not plan.fits, "the caller learns that the run will not fit"


def test_without_an_accelerator_only_the_ram_budget_applies():
    fake = units(("a", 3 * GIB, "cpu", 1.0, False), ("b", 3 * GIB, "cpu", 2.0, False))
    assert plan_room(fake, MemoryBudget(None, 8 * GIB), ram_needed=2 * GIB).steps == []
    plan = plan_room(fake, MemoryBudget(None, 8 * GIB), ram_needed=3 * GIB)
    assert plan.steps == [Step("drop", "a")]


def test_decode_estimate_grows_with_pixels_and_precision():
    assert decode_bytes(1024, 1024, torch.float16) == 4 * decode_bytes(512, 512, torch.float16)
    assert decode_bytes(512, 512, torch.float32) == 2 * decode_bytes(512, 512, torch.float16)
    assert 0.5 * GIB < decode_bytes(1024, 1024, torch.float16) < 4 * GIB


# -- the cache under a budget, with real tiny models ------------------------------------------------------


def live_tensor_bytes() -> int:
    """Bytes of every tensor storage the process still holds, each storage counted once."""
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def model_bytes(cache: ModelCache) -> int:
    return sum(entry.size_bytes for entry in cache.stats().entries)


def test_switching_models_under_a_one_model_budget_holds_one_model(presets, tiny_sd, tiny_sdxl):
    sd, sdxl = resolve_model(str(tiny_sd), presets), resolve_model(str(tiny_sdxl), presets)
    sizes = {}
    for source in (sd, sdxl):
        probe = ModelCache(resolve_device("cpu"), offline=True)
        probe.load_base_model(source)
        sizes[source.location] = model_bytes(probe)
        probe.clear()
    sd_bytes, sdxl_bytes = sizes[str(tiny_sd)], sizes[str(tiny_sdxl)]
    before = live_tensor_bytes()

    # The budget, not the model count, decides: room for either model, not for both.
    budget = MemoryBudget(None, max(sd_bytes, sdxl_bytes) + min(sd_bytes, sdxl_bytes) // 2)
    cache = ModelCache(resolve_device("cpu"), offline=True, budget=budget)
    cache.load_base_model(sd)
    cache.load_base_model(sdxl)
    cache.load_base_model(sd)
    assert cache.stats().loaded_sources == [str(tiny_sd)]
    assert cache.stats().weight_loads == 3
    held = live_tensor_bytes() - before
    assert held == pytest.approx(sd_bytes, rel=0.1), "one model's worth of tensors, no leaked copies"
    cache.clear()


def test_free_memory_keeps_what_a_job_is_using(cache, presets, tiny_sd, tiny_sdxl):
    with cache.lease() as lease:
        lease.base_model(resolve_model(str(tiny_sd), presets))
        cache.load_base_model(resolve_model(str(tiny_sdxl), presets))
        freed = cache.free_idle()
        assert freed > 0 and cache.stats().loaded_sources == [str(tiny_sd)]
    report = cache.memory_report()
    [model] = report["models"]
    assert model["name"] == str(tiny_sd) and model["where"] == "cpu" and not model["in_use"]
    assert model["bytes"] == model_bytes(cache) == report["used_bytes"]["cpu"]
    assert {"unet", "vae", "text_encoder"} <= set(model["components"])


# -- out-of-memory recovery ------------------------------------------------------------------------------


def test_out_of_memory_retries_once_in_a_lower_memory_mode(cache):
    attempts = []

    def work():
        attempts.append("normal")
        raise torch.OutOfMemoryError("CUDA out of memory")

    assert cache.run_on_gpu(work, retry=lambda: attempts.append("lower") or "made it") == "made it"
    assert attempts == ["normal", "lower"]


def test_a_run_that_fails_twice_says_what_to_change_and_the_next_run_works(presets, tiny_sd):
    cache = ModelCache(resolve_device("cpu"), offline=True)  # out of memory is a GPU's, so torch's
    pipeline = TextToImagePipeline(cache, presets)
    request = parse_request(
        TextToImageRequest, {"prompt": "x", "model": str(tiny_sd), "steps": 2, "seed": 4, "num_images": 1}
    )
    expected = np.asarray(pipeline(request)[0].image)
    unet = cache.load_base_model(resolve_model(str(tiny_sd), presets)).components["unet"]
    vae = cache.load_base_model(resolve_model(str(tiny_sd), presets)).components["vae"]
    forward = unet.forward
    tiled_when_retried = []

    def out_of_memory(*args, **kwargs):
        tiled_when_retried.append(vae.use_tiling)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    unet.forward = out_of_memory
    with pytest.raises(OutOfMemory, match="Try fewer images, a smaller size or tile, or a smaller model"):
        pipeline(request)
    assert tiled_when_retried == [False, True], "the retry decodes in tiles"
    assert vae.use_tiling is False, "the shared VAE is left as it was"

    calls = iter([True, False])

    def fails_once(*args, **kwargs):
        if next(calls, False):
            raise torch.OutOfMemoryError("CUDA out of memory")
        return forward(*args, **kwargs)

    unet.forward = fails_once
    recovered = np.asarray(pipeline(request)[0].image)
    assert np.abs(recovered.astype(int) - expected.astype(int)).max() <= 2, "same seed, same noise on retry"
    unet.forward = forward
    assert np.array_equal(np.asarray(pipeline(request)[0].image), expected), "the next run is normal"


# -- concurrent runs --------------------------------------------------------------------------------------


def test_concurrent_runs_get_their_own_results(cache, presets, tiny_sd):
    pipeline = TextToImagePipeline(cache, presets)

    def request(seed: int):
        values = {"prompt": f"run {seed}", "model": str(tiny_sd), "steps": 3, "seed": seed, "num_images": 2}
        return parse_request(TextToImageRequest, values)

    alone = {seed: [np.asarray(r.image) for r in pipeline(request(seed))] for seed in (10, 20, 30)}
    together: dict[int, list] = {}
    failures = []

    def run(seed: int) -> None:
        try:
            together[seed] = list(pipeline(request(seed)))
        except Exception as error:  # reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (10, 20, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    for seed, results in together.items():
        assert [r.parameters.seed for r in results] == [seed, seed + 1]
        assert all(r.parameters.prompt == f"run {seed}" for r in results)
        for made, expected in zip(results, alone[seed], strict=True):
            assert np.array_equal(np.asarray(made.image), expected), "no scheduler state shared between runs"
