"""Offloading: a run whose models do not fit the GPU budget runs with diffusers' offload hooks on the shared
components for that call only, with the same result (CPU, tiny models).

The CPU stands in for the accelerator here (`StandInAccelerator`): the cache then applies its GPU budget,
and diffusers' model offload runs its real hooks with the CPU as the execution device.
"""

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from pipelines.diffusion_style import DiffusionStylePipeline, DiffusionStyleRequest
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache, module_bytes
from studio.core.devices import DeviceConfig, resolve_device
from studio.core.errors import OutOfMemory
from studio.core.memory import MemoryBudget, choose_offload, lower_memory_offload
from studio.core.models import resolve_model
from studio.core.requests import parse_request

TIB = 1024**4


class StandInAccelerator(DeviceConfig):
    @property
    def is_accelerator(self) -> bool:
        return True


def stand_in_cache(gpu_budget: int, offload: str = "auto") -> ModelCache:
    cpu = resolve_device("cpu")
    return ModelCache(
        StandInAccelerator(cpu.device, cpu.dtype, cpu.attention),
        offline=True,
        budget=MemoryBudget(gpu_budget, None),
        free_accelerator_bytes=lambda: TIB,  # no VAE tiling unless a retry asks for it
        offload=offload,
    )


def component_sizes(presets, model) -> tuple[int, int]:
    """The base model's total and largest component bytes."""
    probe = ModelCache(resolve_device("cpu"), offline=True)
    components = probe.load_base_model(resolve_model(str(model), presets)).components.values()
    sizes = [module_bytes(c) for c in components]
    probe.clear()
    return sum(sizes), max(sizes)


def watch_unet(cache: ModelCache, presets, model) -> list[bool]:
    """Whether the shared UNet carried an offload hook, at each of its calls."""
    unet = cache.load_base_model(resolve_model(str(model), presets)).components["unet"]
    calls: list[bool] = []
    unet.register_forward_pre_hook(lambda module, args: calls.append(hasattr(module, "_hf_hook")))
    return calls


def no_hooks_left(cache: ModelCache) -> bool:
    return not any(
        hasattr(entry.module, "_hf_hook") for entry in cache.stats().entries if entry.module is not None
    )


def txt2img(model, **values) -> TextToImageRequest:
    values = {"prompt": "a lighthouse", "model": str(model), "steps": 2, "seed": 3, "num_images": 1, **values}
    return parse_request(TextToImageRequest, values)


# -- the choice, as arithmetic -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "fits", "largest", "budget", "expected"),
    [
        ("auto", True, 5, 10, "none"),  # a large GPU: everything on it
        ("auto", False, 5, 10, "model"),  # a small one: the largest model fits, not all of them
        ("auto", False, 12, 10, "sequential"),  # a tiny one: not even the largest model fits
        ("auto", False, 12, None, "model"),  # no budget set: a run that did not fit gets model offload
        ("none", False, 12, 10, "none"),  # a forced mode wins
        ("model", True, 5, 10, "model"),
        ("sequential", True, 5, 10, "sequential"),
    ],
)
def test_offload_follows_the_budget_unless_forced(requested, fits, largest, budget, expected):
    assert choose_offload(requested, fits=fits, largest_bytes=largest, budget_bytes=budget) == expected


def test_the_out_of_memory_retry_offloads_one_step_further():
    assert [lower_memory_offload(m) for m in ("none", "model", "sequential")] == [
        "model",
        "sequential",
        "sequential",
    ]


# -- runs through the cache ----------------------------------------------------------------------------------


def test_a_run_that_does_not_fit_the_budget_offloads_by_model_with_the_same_result(presets, tiny_sd):
    total, largest = component_sizes(presets, tiny_sd)
    roomy, small = stand_in_cache(TIB), stand_in_cache((largest + total) // 2)
    results = {}
    for name, cache in (("roomy", roomy), ("small", small)):
        calls = watch_unet(cache, presets, tiny_sd)
        results[name] = np.asarray(TextToImagePipeline(cache, presets)(txt2img(tiny_sd))[0].image)
        results[name + " hooked"] = set(calls)
        assert no_hooks_left(cache), "the shared components are plain again after the run"
    assert results["roomy hooked"] == {False}, "models that fit run without offload"
    assert results["small hooked"] == {True}, "models that do not fit run with offload hooks"
    assert np.array_equal(results["roomy"], results["small"]), "offloading does not change the image"
    assert small.memory_report()["offload"] == "auto"
    assert (roomy.stats().last_offload, small.stats().last_offload) == ("none", "model")

    again = np.asarray(TextToImagePipeline(small, presets)(txt2img(tiny_sd))[0].image)
    assert np.array_equal(again, results["small"]), "the next offloaded run is the same"
    roomy.clear()
    small.clear()


@pytest.mark.parametrize(("flag", "budget", "hooked"), [("model", TIB, True), ("none", 1, False)])
def test_the_offload_flag_wins_over_the_budget(presets, tiny_sd, flag, budget, hooked):
    cache = stand_in_cache(budget, offload=flag)
    calls = watch_unet(cache, presets, tiny_sd)
    TextToImagePipeline(cache, presets)(txt2img(tiny_sd))
    assert set(calls) == {hooked}
    assert no_hooks_left(cache)
    cache.clear()


def test_after_out_of_memory_the_retry_offloads_and_decodes_in_tiles(presets, tiny_sd):
    cache = stand_in_cache(TIB)
    base = cache.load_base_model(resolve_model(str(tiny_sd), presets))
    unet, vae = base.components["unet"], base.components["vae"]
    attempts: list[tuple[bool, bool]] = []

    def first_call_runs_out(module, args):
        if not attempts:
            attempts.append((hasattr(module, "_hf_hook"), vae.use_tiling))
            raise torch.OutOfMemoryError("CUDA out of memory")
        if len(attempts) == 1:
            attempts.append((hasattr(module, "_hf_hook"), vae.use_tiling))

    handle = unet.register_forward_pre_hook(first_call_runs_out)
    [result] = TextToImagePipeline(cache, presets)(txt2img(tiny_sd))
    handle.remove()
    assert attempts == [(False, False), (True, True)], "retried with model offload and tiled decoding"
    assert result.image.size == (64, 64)
    assert no_hooks_left(cache) and vae.use_tiling is False, "the shared models are left as they were"

    def always_out_of_memory(module, args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    handle = unet.register_forward_pre_hook(always_out_of_memory)
    with pytest.raises(OutOfMemory, match="Try fewer images"):
        TextToImagePipeline(cache, presets)(txt2img(tiny_sd))
    handle.remove()
    assert no_hooks_left(cache)
    assert TextToImagePipeline(cache, presets)(txt2img(tiny_sd))[0].image.size == (64, 64), (
        "the next run works"
    )
    cache.clear()


def test_style_transfer_with_controlnet_and_ip_adapter_offloads_with_the_same_result(tiny_presets, tiny_sd):
    content = Image.fromarray(skimage.data.astronaut()).resize((64, 64), Image.Resampling.LANCZOS)
    painting = Image.fromarray(skimage.data.coffee()).resize((48, 32), Image.Resampling.LANCZOS)
    values = {"image": content, "style_image": painting, "prompt": "oil", "steps": 2, "seed": 5}
    request = parse_request(DiffusionStyleRequest, {"model": str(tiny_sd), **values})
    base_model_bytes, _ = component_sizes(tiny_presets, tiny_sd)
    results = []  # the base model fits the small budget, not with the ControlNet and the image encoder
    for cache in (stand_in_cache(TIB), stand_in_cache(base_model_bytes)):
        calls = watch_unet(cache, tiny_presets, tiny_sd)
        results.append(np.asarray(DiffusionStylePipeline(cache, tiny_presets)(request)[0].image))
        results.append(set(calls))
        assert no_hooks_left(cache)
        unet = cache.load_base_model(resolve_model(str(tiny_sd), tiny_presets)).components["unet"]
        assert unet.encoder_hid_proj is None, "the IP-Adapter is taken out of the shared UNet again"
        cache.clear()
    plain, plain_hooked, offloaded, offloaded_hooked = results
    assert plain_hooked == {False} and offloaded_hooked == {True}
    # Equal up to float rounding: a few pixels may differ by one level.
    assert np.abs(plain.astype(int) - offloaded).max() <= 1


class MoveRecorder(torch.nn.Linear):
    """A small model that notes each move the cache gives it."""

    def __init__(self) -> None:
        super().__init__(64, 64)
        self.moves: list[str] = []

    def to(self, *args, **kwargs):
        self.moves.append(str(args[0] if args else kwargs.get("device")))
        return super().to(*args, **kwargs)


@pytest.mark.parametrize(("budget", "offloadable_moved"), [(TIB, True), (1024, False)])
def test_an_offloadable_model_stays_in_ram_when_the_budget_cannot_hold_it(budget, offloadable_moved):
    from studio.core.cache.kinds import CONTROLNET, UPSCALER

    cache = stand_in_cache(budget)
    with cache.lease() as lease:
        controlnet = lease.model(CONTROLNET, "cn", MoveRecorder)
        upscaler = lease.model(UPSCALER, "up", MoveRecorder)
    assert bool(controlnet.moves) == offloadable_moved, (
        "a pipeline component waits in RAM for an offloaded run"
    )
    assert upscaler.moves, "a model that cannot be offloaded always goes to the compute device"
