import gc
import threading
import weakref

import pytest
import torch
from diffusers import (
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
)

from pipelines.common import parse_request
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache, module_bytes
from studio.core.devices import resolve_device
from studio.core.memory import MemoryBudget
from studio.core.models import resolve_model


def weights(pipe) -> dict[str, int]:
    """Every weight tensor's storage address, by component and name."""
    pointers = {}
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, component, None)
        if module is not None:
            pointers.update({f"{component}.{n}": p.data_ptr() for n, p in module.named_parameters()})
    return pointers


@pytest.mark.parametrize(
    ("family", "img2img_class"),
    [("tiny_sd", StableDiffusionImg2ImgPipeline), ("tiny_sdxl", StableDiffusionXLImg2ImgPipeline)],
)
def test_text_to_image_and_image_to_image_share_the_very_same_tensors(
    cache, presets, family, img2img_class, request
):
    model = request.getfixturevalue(family)
    base = cache.base_model(resolve_model(str(model), presets))
    sampler = presets.sampler("Euler")
    text_to_image = base.build(
        StableDiffusionPipeline if family == "tiny_sd" else img2img_class.__mro__[0],
        base.new_scheduler(sampler),
    )
    image_to_image = base.build(img2img_class, base.new_scheduler(sampler))
    assert text_to_image.unet is image_to_image.unet is base.components["unet"]
    assert text_to_image.vae is image_to_image.vae
    assert weights(text_to_image) == weights(image_to_image)
    assert len(weights(text_to_image)) > 0
    # The same model asked for again is the same object: no second load.
    assert cache.base_model(resolve_model(str(model), presets)) is base
    assert cache.weight_loads == 1


def test_running_text_to_image_loads_weights_once(cache, presets, tiny_sd):
    pipeline = TextToImagePipeline(cache, presets)
    for seed in (1, 2):
        pipeline(
            parse_request(
                TextToImageRequest, {"prompt": "x", "model": str(tiny_sd), "steps": 2, "seed": seed}
            )
        )
    assert cache.weight_loads == 1
    unet_entries = [e for e in cache.entries() if e.key.component == "unet"]
    assert len(unet_entries) == 1 and unet_entries[0].pins == 0


def test_each_request_gets_its_own_scheduler(cache, presets, tiny_sd):
    base = cache.base_model(resolve_model(str(tiny_sd), presets))
    sampler = presets.sampler("DPM++ 2M Karras")
    first, second = base.new_scheduler(sampler), base.new_scheduler(sampler)
    assert first is not second
    assert first.config.use_karras_sigmas and type(first).__name__ == "DPMSolverMultistepScheduler"
    first.set_timesteps(5)
    second.set_timesteps(20)
    assert len(first.timesteps) == 5, "one request's schedule never leaks into another's"


def test_entries_count_bytes_and_keep_the_requested_dtype(presets, tiny_sd):
    cache = ModelCache(resolve_device("cpu", "bfloat16"), offline=True)
    base = cache.base_model(resolve_model(str(tiny_sd), presets))
    unet = base.components["unet"]
    assert {p.dtype for p in unet.parameters()} == {torch.bfloat16}, "no silent cast to float32"
    pipe = base.build(StableDiffusionImg2ImgPipeline, base.new_scheduler(presets.sampler("Euler")))
    assert pipe.unet.dtype == torch.bfloat16
    entry = next(e for e in cache.entries() if e.key.component == "unet")
    assert entry.size_bytes == sum(p.numel() * 2 for p in unet.parameters()) + sum(
        b.numel() * b.element_size() for b in unet.buffers()
    )
    assert entry.key.dtype == "bfloat16" and entry.device == "cpu"
    assert cache.total_bytes() == sum(module_bytes(v) for v in base.components.values())


def one_model_budget(presets, *models) -> MemoryBudget:
    """A RAM budget that holds the largest of `models`, not two of them."""
    sizes = []
    for model in models:
        probe = ModelCache(resolve_device("cpu"), offline=True)
        probe.base_model(resolve_model(str(model), presets))
        sizes.append(probe.total_bytes())
        probe.clear()
    return MemoryBudget(None, max(sizes) + min(sizes) // 2)


def test_switching_models_releases_the_old_one(presets, tiny_sd, tiny_sdxl):
    cache = ModelCache(
        resolve_device("cpu"), offline=True, budget=one_model_budget(presets, tiny_sd, tiny_sdxl)
    )
    first = cache.base_model(resolve_model(str(tiny_sd), presets))
    first_unet = weakref.ref(first.components["unet"])
    del first
    cache.base_model(resolve_model(str(tiny_sdxl), presets))
    gc.collect()
    assert cache.loaded_sources() == [str(tiny_sdxl)]
    assert first_unet() is None, "no reference to the old model's weights survives"
    assert {e.key.source for e in cache.entries()} == {str(tiny_sdxl)}


def test_a_model_in_use_is_never_evicted(presets, tiny_sd, tiny_sdxl):
    cache = ModelCache(
        resolve_device("cpu"), offline=True, budget=one_model_budget(presets, tiny_sd, tiny_sdxl)
    )
    with cache.lease() as lease:
        lease.base_model(resolve_model(str(tiny_sd), presets))
        cache.base_model(resolve_model(str(tiny_sdxl), presets))
        assert set(cache.loaded_sources()) == {str(tiny_sd), str(tiny_sdxl)}
        assert all(e.pins == 1 for e in cache.entries() if e.key.source == str(tiny_sd))
    # Once free, the least recently used one goes when room is needed again.
    cache.base_model(resolve_model(str(tiny_sd), presets))
    cache.base_model(resolve_model(str(tiny_sdxl), presets))
    assert cache.loaded_sources() == [str(tiny_sdxl)]
    assert all(e.pins == 0 for e in cache.entries())


def test_a_run_resumed_on_another_thread_leaves_the_gpu_free(cache, presets, tiny_sd):
    """Gradio resumes a generator on whichever worker thread is free; no lock may be owned across a yield."""
    pipeline = TextToImagePipeline(cache, presets)
    run = pipeline.generate(
        parse_request(TextToImageRequest, {"prompt": "x", "model": str(tiny_sd), "steps": 2, "num_images": 2})
    )
    outcome = {}

    def step(name):
        try:
            outcome[name] = next(run, None)
        except Exception as error:  # recorded for the assertion below
            outcome[name] = error

    for name in ("first", "second", "end"):
        worker = threading.Thread(target=step, args=(name,))
        worker.start()
        worker.join(timeout=60)
    assert not isinstance(outcome["second"], Exception), outcome["second"]
    assert outcome["end"] is None
    acquired = []

    def take_the_gpu():
        acquired.append(cache.gpu_lock.acquire(timeout=5))
        if acquired[-1]:
            cache.gpu_lock.release()

    other = threading.Thread(target=take_the_gpu)
    other.start()
    other.join()
    assert acquired == [True], "another thread can take the GPU right away"
    assert all(e.pins == 0 for e in cache.entries())
