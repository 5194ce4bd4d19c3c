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

from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import CacheKey, ModelCache, module_bytes
from studio.core.cache.kinds import CONTROLNET, DETECTOR, IP_ADAPTER, OPENVINO, UPSCALER
from studio.core.devices import DeviceConfig, resolve_device
from studio.core.memory import MemoryBudget
from studio.core.models import resolve_model
from studio.core.requests import parse_request


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
    base = cache.load_base_model(resolve_model(str(model), presets))
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
    assert cache.load_base_model(resolve_model(str(model), presets)) is base
    assert cache.stats().weight_loads == 1


def test_running_text_to_image_loads_weights_once(each_backend_cache, presets, tiny_sd):
    cache, loads = each_backend_cache, []
    pipeline = TextToImagePipeline(cache, presets)
    for seed in (1, 2):
        pipeline(
            parse_request(
                TextToImageRequest, {"prompt": "x", "model": str(tiny_sd), "steps": 2, "seed": seed}
            )
        )
        loads.append(cache.stats().weight_loads)
    # the base model, and on OpenVINO its text encoder, UNet and decoder compiled once each
    assert loads == ([1, 1] if cache.backend == "torch" else [4, 4])
    unet_entries = [e for e in cache.stats().entries if e.key.component == "unet"]
    assert len(unet_entries) == 1 and unet_entries[0].pins == 0


def test_each_request_gets_its_own_scheduler(cache, presets, tiny_sd):
    base = cache.load_base_model(resolve_model(str(tiny_sd), presets))
    sampler = presets.sampler("DPM++ 2M Karras")
    first, second = base.new_scheduler(sampler), base.new_scheduler(sampler)
    assert first is not second
    assert first.config.use_karras_sigmas and type(first).__name__ == "DPMSolverMultistepScheduler"
    first.set_timesteps(5)
    second.set_timesteps(20)
    assert len(first.timesteps) == 5, "one request's schedule never leaks into another's"


def test_entries_count_bytes_and_keep_the_requested_dtype(presets, tiny_sd):
    cache = ModelCache(resolve_device("cpu", "bfloat16"), offline=True)
    base = cache.load_base_model(resolve_model(str(tiny_sd), presets))
    unet = base.components["unet"]
    assert {p.dtype for p in unet.parameters()} == {torch.bfloat16}, "no silent cast to float32"
    pipe = base.build(StableDiffusionImg2ImgPipeline, base.new_scheduler(presets.sampler("Euler")))
    assert pipe.unet.dtype == torch.bfloat16
    entry = next(e for e in cache.stats().entries if e.key.component == "unet")
    assert entry.size_bytes == sum(p.numel() * 2 for p in unet.parameters()) + sum(
        b.numel() * b.element_size() for b in unet.buffers()
    )
    assert entry.key.dtype == "bfloat16" and entry.device == "cpu"
    assert cache.stats().total_bytes == sum(module_bytes(v) for v in base.components.values())


def one_model_budget(presets, *models) -> MemoryBudget:
    """A RAM budget that holds the largest of `models`, not two of them."""
    sizes = []
    for model in models:
        probe = ModelCache(resolve_device("cpu"), offline=True)
        probe.load_base_model(resolve_model(str(model), presets))
        sizes.append(probe.stats().total_bytes)
        probe.clear()
    return MemoryBudget(None, max(sizes) + min(sizes) // 2)


def test_switching_models_releases_the_old_one(presets, tiny_sd, tiny_sdxl):
    cache = ModelCache(
        resolve_device("cpu"), offline=True, budget=one_model_budget(presets, tiny_sd, tiny_sdxl)
    )
    first = cache.load_base_model(resolve_model(str(tiny_sd), presets))
    first_unet = weakref.ref(first.components["unet"])
    del first
    cache.load_base_model(resolve_model(str(tiny_sdxl), presets))
    gc.collect()
    assert cache.stats().loaded_sources == [str(tiny_sdxl)]
    assert first_unet() is None, "no reference to the old model's weights survives"
    assert {e.key.source for e in cache.stats().entries} == {str(tiny_sdxl)}


def test_a_model_in_use_is_never_evicted(presets, tiny_sd, tiny_sdxl):
    cache = ModelCache(
        resolve_device("cpu"), offline=True, budget=one_model_budget(presets, tiny_sd, tiny_sdxl)
    )
    with cache.lease() as lease:
        lease.base_model(resolve_model(str(tiny_sd), presets))
        cache.load_base_model(resolve_model(str(tiny_sdxl), presets))
        assert set(cache.stats().loaded_sources) == {str(tiny_sd), str(tiny_sdxl)}
        assert all(e.pins == 1 for e in cache.stats().entries if e.key.source == str(tiny_sd))
    # Once free, the least recently used one goes when room is needed again.
    cache.load_base_model(resolve_model(str(tiny_sd), presets))
    cache.load_base_model(resolve_model(str(tiny_sdxl), presets))
    assert cache.stats().loaded_sources == [str(tiny_sdxl)]
    assert all(e.pins == 0 for e in cache.stats().entries)


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
    assert all(e.pins == 0 for e in cache.stats().entries)


# -- the hazards of the old cache, each pinned down ---------------------------------------------------------


def linear(size_bytes: int) -> torch.nn.Module:
    """A model of about `size_bytes` (float32 weights)."""
    side = int((size_bytes / 4) ** 0.5)
    return torch.nn.Linear(side, side, bias=False)


def test_a_model_fetched_during_a_run_is_never_evicted_while_the_run_holds_it():
    """Under a RAM budget with room for one of two models, a run that fetches both keeps both: the second
    fetch makes room by dropping idle models only, never the first one the run is still using."""
    megabyte = 1024**2
    cache = ModelCache(resolve_device("cpu"), offline=True, budget=MemoryBudget(None, 3 * megabyte))
    with cache.lease() as lease:
        controlnet = lease.model(CONTROLNET, "cn", lambda: linear(2 * megabyte))
        adapter = lease.model(IP_ADAPTER, "ip", lambda: linear(2 * megabyte))
        held = {entry.key for entry in cache.stats().entries}
        expected = {CONTROLNET.key("cn", cache.device_config), IP_ADAPTER.key("ip", cache.device_config)}
        assert held == expected, "the first model survived the second fetch"
        assert all(entry.pins == 1 for entry in cache.stats().entries)
        assert controlnet.weight.sum().item() == controlnet.weight.sum().item() and adapter is not controlnet
    with cache.lease() as lease:  # once the run is over, the budget applies again
        lease.model(CONTROLNET, "other", lambda: linear(2 * megabyte))
    assert [entry.key.source for entry in cache.stats().entries] == ["other"]
    assert cache.stats().weight_loads == 3


def test_the_inpainting_unet_is_placed_and_counted_with_its_base_model(inpaint_presets, monkeypatch):
    """The dedicated inpainting UNet is fetched through the run's lease like every model: pinned during the
    run, counted with its base model, and on the GPU only when the budget holds it. The GPU is played by
    the CPU: a move to the compute device (a torch.device) counts as "on the GPU", one to "cpu" as back in
    RAM."""
    from pipelines.inpaint import InpaintPipeline, InpaintRequest
    from studio.core.cache import CacheEntry
    from tests.models.test_image_to_image import photo, square_mask
    from tests.models.test_offload import stand_in_cache

    on_gpu: set[int] = set()
    move = CacheEntry.moved_to

    def tracked_move(entry, device):
        (on_gpu.add if isinstance(device, torch.device) else on_gpu.discard)(id(entry))
        move(entry, device)

    monkeypatch.setattr(CacheEntry, "moved_to", tracked_move)
    monkeypatch.setattr(CacheEntry, "place", property(lambda e: "accelerator" if id(e) in on_gpu else "cpu"))
    request = parse_request(
        InpaintRequest,
        {"image": photo(64, 64), "mask": square_mask((64, 64)), "prompt": "x", "model": "tiny", "steps": 2},
    )
    probe = stand_in_cache(1024**4)
    probe.load_base_model(resolve_model("tiny", inpaint_presets))
    base_bytes = probe.stats().total_bytes
    probe.clear()

    outcome = {}
    for budget in (1024**4, base_bytes):
        cache = stand_in_cache(budget)
        pipeline = InpaintPipeline(cache, inpaint_presets)
        fetch = pipeline._denoiser_for
        seen = {}

        def spy(lease, base, source, fetch=fetch, seen=seen):
            replacements, name = fetch(lease, base, source)
            [seen["entry"]] = [e for e in lease.registry.entries() if e.value is replacements["unet"]]
            seen["pins"], seen["on_gpu"] = seen["entry"].pins, id(seen["entry"]) in on_gpu
            return replacements, name

        monkeypatch.setattr(pipeline, "_denoiser_for", spy)
        pipeline(request)
        [unit] = cache.memory_report()["models"]
        assert seen["pins"] == 1 and seen["entry"].pins == 0, "pinned while the run uses it, then free"
        assert seen["entry"].unit == unit["name"] and unit["bytes"] == base_bytes + seen["entry"].size_bytes
        outcome[budget] = (seen["on_gpu"], cache.stats().last_offload)
        cache.clear()
    assert outcome[1024**4] == (True, "none"), "on the GPU when the budget holds it"
    assert outcome[base_bytes] == (False, "model"), "else it waits in RAM for an offloaded run"


def test_a_model_kind_makes_its_keys_and_keeps_its_precision():
    cpu_bf16 = DeviceConfig(torch.device("cpu"), torch.bfloat16, "sdpa")
    gpu_half = DeviceConfig(torch.device("cuda"), torch.float16, "sdpa")
    assert CONTROLNET.key("cn", cpu_bf16) == CacheKey("cn", "controlnet", "bfloat16"), (
        "the device's precision"
    )
    assert UPSCALER.key("up", cpu_bf16).dtype == "float32" and UPSCALER.key("up", gpu_half).dtype == "float16"
    assert DETECTOR.key("annotators", gpu_half, part="depth") == CacheKey(
        "annotators", "detector:depth", "float32"
    )
    converted = OPENVINO.key("sd", cpu_bf16, part="unet", variant="unet-tiled")
    assert converted == CacheKey("sd", "openvino unet", "float32", "unet-tiled")
