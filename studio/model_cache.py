"""One model cache per process, shared by every pipeline.

- Entries are keyed by what they are (where the model comes from, which component, dtype) and hold the
  loaded objects with their size in bytes and the device they live on.
- A base model's components are loaded once. Every task builds its diffusers pipeline around the very same
  component objects (`BaseModel.build`), with a fresh scheduler per request: schedulers are stateful.
- All GPU work is serialized by `gpu_lock`, held around loading and around each image's denoising (never
  across a yield: Gradio resumes generators on any thread).
- Entries used by a running job are never evicted. Base models beyond `max_base_models` are dropped least
  recently used first. Under a memory budget (studio/memory.py), idle models are demoted from the GPU to
  CPU RAM and then dropped, least recently used first, and promoted back when a run needs them.
- Base models, ControlNets and IP-Adapters are loaded into RAM and promoted to the GPU when the budget
  holds them (so a large one never lands on a full GPU). A run whose models do
  not fit even after making room offloads (studio/memory.py `choose_offload`): diffusers' offload hooks
  are put on the shared components for that one call and taken off again after it.
- GPU work runs through `run_on_gpu`/`denoise`: tiled VAE decoding when an estimate says an untiled decode
  would not fit, and one retry in a lower-memory mode (tiled VAE, offload) after an out-of-memory error,
  then a plain message.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from studio.devices import DeviceConfig
from studio.errors import OutOfMemory
from studio.memory import (
    OFFLOAD_CHOICES,
    MemoryBudget,
    Offload,
    Place,
    Unit,
    choose_offload,
    decode_bytes,
    lower_memory_offload,
    plan_room,
)
from studio.models import ModelSource, family_of, load_pipeline, load_unet
from studio.presets import SamplerPreset

log = logging.getLogger(__name__)

T = TypeVar("T")
OUT_OF_MEMORY_ADVICE = (
    "Out of memory, even after freeing what could be freed and retrying with less memory. "
    "Try fewer images, a smaller size or tile, or a smaller model."
)


@dataclass(frozen=True)
class CacheKey:
    source: str  # hub id or absolute path
    component: str  # "unet", "vae", "text_encoder", ...
    dtype: str
    variant: str | None = None


@dataclass
class CacheEntry:
    key: CacheKey
    value: Any
    size_bytes: int
    device: str
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0  # running jobs using it; an entry in use is never evicted
    module: Any = None  # the torch module to move between the GPU and RAM; None: cannot move

    @property
    def place(self) -> Place:
        return "accelerator" if self.device.startswith(("cuda", "mps")) else "cpu"


def module_bytes(value: Any) -> int:
    """Bytes held by a module's parameters and buffers (0 for tokenizers, configs and the like)."""
    if not isinstance(value, torch.nn.Module):
        return 0
    tensors = list(value.parameters()) + list(value.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def module_device(value: Any) -> str:
    if isinstance(value, torch.nn.Module):
        for tensor in value.parameters():
            return str(tensor.device)
    return "-"


@dataclass
class BaseModel:
    """The loaded components of one Stable Diffusion model, shared by every task built on it."""

    source: ModelSource
    family: str  # "sd" or "sdxl"
    pipeline_class_name: str  # what the checkpoint was saved as, e.g. StableDiffusionInpaintPipeline
    components: dict[str, Any]
    keys: list[CacheKey]  # every cache entry of this model, extras included
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. a dedicated inpainting UNet

    @property
    def unet_config(self) -> Any:
        return self.components["unet"].config

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.components["vae"].config.block_out_channels) - 1)

    @property
    def native_resolution(self) -> int:
        return int(self.unet_config.sample_size) * self.vae_scale_factor

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this for the UNet's down- and up-sampling to line up
        (and of 8, which diffusers' pipelines require)."""
        return math.lcm(8, self.vae_scale_factor * 2 ** (len(self.unet_config.block_out_channels) - 1))

    @property
    def architecture(self) -> str:
        """What adapter weights (ControlNets, IP-Adapters) must be made for: sd1, sd2 or sdxl."""
        if self.family == "sdxl":
            return "sdxl"
        return "sd2" if int(self.unet_config.cross_attention_dim) == 1024 else "sd1"

    @property
    def is_inpainting(self) -> bool:
        return int(self.unet_config.in_channels) == 9

    def new_scheduler(self, sampler: SamplerPreset) -> Any:
        import diffusers

        scheduler_class = getattr(diffusers, sampler.scheduler)
        return scheduler_class.from_config(self.components["scheduler"].config, **sampler.options)

    def build(self, pipeline_class: type, scheduler: Any, **replacements: Any) -> Any:
        """A diffusers pipeline of `pipeline_class` around the shared components (no copy, no cast).

        `replacements` swap in other cached components, e.g. `unet=` an inpainting UNet.
        """
        expected, optional = pipeline_class._get_signature_keys(pipeline_class)
        modules = {name: self.components.get(name) for name in expected}
        modules.update(replacements, scheduler=scheduler)
        options = {}
        if "requires_safety_checker" in optional:
            options["requires_safety_checker"] = False
        if "add_watermarker" in optional:
            options["add_watermarker"] = False
        pipe = pipeline_class(**modules, **options)
        pipe.set_progress_bar_config(disable=True)
        return pipe


class ModelCache:
    def __init__(
        self,
        device_config: DeviceConfig,
        *,
        offline: bool = False,
        max_base_models: int = 1,
        loader: Callable[..., Any] = load_pipeline,
        unet_loader: Callable[..., Any] = load_unet,
        budget: MemoryBudget | None = None,
        free_accelerator_bytes: Callable[[], int] | None = None,
        offload: str = "auto",
    ) -> None:
        if offload not in OFFLOAD_CHOICES:
            raise ValueError(f"offload must be one of {', '.join(OFFLOAD_CHOICES)}, not {offload!r}")
        self.device_config = device_config
        self.offload = offload  # "auto": decided per run from the budget
        self.last_offload: Offload = "none"  # how the last diffusion call ran
        self.offline = offline
        self.max_base_models = max_base_models
        self.budget = budget or MemoryBudget(None, None)
        self._free_accelerator_bytes = free_accelerator_bytes or self._measure_free_accelerator_bytes
        self.gpu_lock = threading.RLock()
        self._loader = loader
        self._unet_loader = unet_loader
        self._entries: dict[CacheKey, CacheEntry] = {}
        self._base_models: dict[str, BaseModel] = {}
        self.weight_loads = 0  # how many times weights were read from disk; sharing keeps this low

    # -- base models -------------------------------------------------------------------------------------

    def base_model(self, source: ModelSource) -> BaseModel:
        """The loaded base model for `source`, loading it (and evicting others) only when needed."""
        with self.gpu_lock:
            base = self._base_models.get(source.location)
            if base is not None:
                self._touch(base.keys)
                self._evict_base_models(room_for=0)  # back under the limit after an in-use overlap
                self._promote(base.keys)
                return base
            self._evict_base_models(room_for=1)
            self.make_room(ram_needed=0)
            pipe = self._loader(source, self.device_config, offline=self.offline)
            self.weight_loads += 1
            dtype = self.device_config.dtype_name
            keys = []
            for name, value in pipe.components.items():
                if value is None or name == "scheduler":
                    continue
                key = CacheKey(source.location, name, dtype)
                self._entries[key] = self._entry(key, value, value)
                keys.append(key)
            # The scheduler is kept only as a config holder: every request builds its own instance.
            scheduler_key = CacheKey(source.location, "scheduler", dtype)
            self._entries[scheduler_key] = CacheEntry(scheduler_key, pipe.scheduler, 0, "-")
            keys.append(scheduler_key)
            class_name = type(pipe).__name__
            base = BaseModel(
                source=source,
                family=family_of(class_name),
                pipeline_class_name=class_name,
                components={key.component: self._entries[key].value for key in keys},
                keys=keys,
            )
            self._base_models[source.location] = base
            self._settle(keys)
            self._promote(keys)  # loaded into RAM; onto the GPU when the budget holds it
            return base

    def model(
        self,
        key: CacheKey,
        load: Callable[[], Any],
        *,
        module: Callable[[Any], Any] = lambda v: v,
        nbytes: int | None = None,
        offloadable: bool = False,
    ) -> Any:
        """Any other model (an upscaler, an ONNX session), loaded once under `key` and kept as an entry.

        `module` picks the torch module inside the value, whose bytes and device the entry records;
        `nbytes` gives the size of a value that is not a torch module (an ONNX session: its file size).
        An `offloadable` model (a pipeline component: ControlNet, IP-Adapter) is loaded into RAM and
        stays there when the budget cannot hold it, for an offloaded run; any other model is always
        brought to the compute device.
        """
        with self.gpu_lock:
            entry = self._entries.get(key)
            if entry is None:
                value = load()
                self.weight_loads += 1
                entry = self._entry(key, value, module(value), nbytes)
                self._entries[key] = entry
                self._settle([key])
            self._promote([key], always=not offloadable)
            entry.last_used = time.monotonic()
            return entry.value

    def inpaint_unet(self, base: BaseModel, source: ModelSource) -> Any:
        """The UNet of a dedicated inpainting checkpoint, loaded once beside `base` and sharing its text
        encoders and VAE (an inpainting checkpoint's are the base model's). Released with `base`."""
        with self.gpu_lock:
            unet = base.extras.get("inpaint_unet")
            if unet is None:
                unet = self._unet_loader(source, self.device_config, offline=self.offline)
                self.weight_loads += 1
                key = CacheKey(source.location, "unet", self.device_config.dtype_name)
                self._entries[key] = self._entry(key, unet, unet)
                base.keys.append(key)
                base.extras["inpaint_unet"] = unet
            return unet

    @contextmanager
    def use(self, source: ModelSource) -> Iterator[BaseModel]:
        """The base model for `source`, loaded if needed and kept from eviction until the block ends.

        No lock is held inside the block: pipelines yield there, and Gradio resumes a generator on any
        worker thread, so a lock held across a yield could be released by the wrong thread. Hold
        `gpu_lock` around each piece of GPU work instead.
        """
        with self.gpu_lock:
            base = self.base_model(source)
            keys = list(base.keys)  # entries added during the run were never counted as in use
            for key in keys:
                self._entries[key].users += 1
        try:
            yield base
        finally:
            with self.gpu_lock:
                for key in keys:
                    entry = self._entries.get(key)
                    if entry is not None:
                        entry.users -= 1
                        entry.last_used = time.monotonic()

    # -- placement under the budget ----------------------------------------------------------------------

    def _entry(self, key: CacheKey, value: Any, module: Any, nbytes: int | None = None) -> CacheEntry:
        size = module_bytes(module) if nbytes is None else nbytes
        movable = module if isinstance(module, torch.nn.Module) and size else None
        return CacheEntry(key, value, size, module_device(module), module=movable)

    def units(self) -> dict[str, tuple[Unit, list[CacheKey]]]:
        """What is placed and evicted together, by name: each base model whole, every other model alone."""
        groups: dict[str, list[CacheKey]] = {}
        for location, base in self._base_models.items():
            groups[location] = [key for key in base.keys if key in self._entries]
        grouped = {key for keys in groups.values() for key in keys}
        for key in self._entries:
            if key not in grouped:
                groups[f"{key.component}: {key.source}"] = [key]
        units = {}
        for name, keys in groups.items():
            entries = [self._entries[key] for key in keys]
            on_accelerator = any(e.place == "accelerator" for e in entries)
            unit = Unit(
                name=name,
                size=sum(e.size_bytes for e in entries),
                place="accelerator" if on_accelerator else "cpu",
                last_used=max((e.last_used for e in entries), default=0.0),
                in_use=any(e.users > 0 for e in entries),
            )
            units[name] = (unit, keys)
        return units

    def make_room(self, *, accelerator_needed: int = 0, ram_needed: int = 0) -> bool:
        """Demote, then drop, idle models until the budget holds `*_needed` more bytes; False if it cannot."""
        with self.gpu_lock:
            units = self.units()
            plan = plan_room(
                [unit for unit, _ in units.values()],
                self.budget,
                accelerator_needed=accelerator_needed,
                ram_needed=ram_needed,
            )
            for step in plan.steps:
                _, keys = units[step.unit]
                if step.action == "demote":
                    self._move(keys, torch.device("cpu"))
                    log.info("moved %s to CPU RAM to make room", step.unit)
                elif step.unit in self._base_models:
                    self.release(step.unit)
                else:
                    for key in keys:
                        self._entries.pop(key, None)
                    log.info("dropped %s to make room", step.unit)
            if plan.steps:
                free_memory()
            if not plan.fits:
                log.info("the models of this run do not fit the memory budget")
            return plan.fits

    def _move(self, keys: list[CacheKey], device: torch.device) -> None:
        for key in keys:
            entry = self._entries[key]
            if entry.module is not None:
                entry.module.to(device)
                entry.device = module_device(entry.module)

    def _settle(self, keys: list[CacheKey]) -> None:
        """After a load: the new model stays, others make way for it if the budget is exceeded."""
        for key in keys:
            self._entries[key].users += 1
        try:
            self.make_room()
        finally:
            for key in keys:
                self._entries[key].users -= 1

    def _promote(self, keys: list[CacheKey], *, always: bool = False) -> bool:
        """Bring models in RAM to the compute device, making room for them first. They stay in RAM when
        they do not fit the budget (unless offloading is switched off, or `always`), and the run
        offloads: returns whether they fit."""
        if not self.device_config.is_accelerator:
            return True
        in_ram = [k for k in keys if self._entries[k].module is not None and self._entries[k].place == "cpu"]
        if not in_ram:
            return True
        for key in keys:
            self._entries[key].users += 1
        try:
            fits = self.make_room(accelerator_needed=sum(self._entries[k].size_bytes for k in in_ram))
            offloading = self.offload in ("model", "sequential") or (self.offload == "auto" and not fits)
            if always or not offloading:
                self._move(in_ram, self.device_config.device)
            return fits
        finally:
            for key in keys:
                self._entries[key].users -= 1

    def free_idle(self) -> int:
        """Drop every model no job is using; returns the bytes let go."""
        with self.gpu_lock:
            freed = 0
            for name, (unit, keys) in self.units().items():
                if unit.in_use:
                    continue
                freed += unit.size
                if name in self._base_models:
                    self.release(name)
                else:
                    for key in keys:
                        self._entries.pop(key, None)
            free_memory()
            return freed

    # -- running on the GPU --------------------------------------------------------------------------------

    def run_on_gpu(self, work: Callable[[], T], *, retry: Callable[[], T] | None = None) -> T:
        """`work()` under the GPU lock; after an out-of-memory error, free what can be freed and run
        `retry()` (a lower-memory way to do the same work) once; if that fails too, say what to change."""
        with self.gpu_lock:
            try:
                return work()
            except torch.OutOfMemoryError:
                log.warning("out of memory; freeing idle models and retrying in a lower-memory mode")
            # Outside the except block, so the failed attempt's frames and activations can be freed.
            self.free_idle()
            try:
                return (retry or work)()
            except torch.OutOfMemoryError:
                pass
            free_memory()
            raise OutOfMemory(OUT_OF_MEMORY_ADVICE)

    def denoise(self, base: BaseModel, size: tuple[int, int], call: Callable[[], T], *, pipe: Any) -> T:
        """`call()`, a diffusion call of `pipe` for `size` images, in the lowest-memory way it needs:

        - its models on the GPU when they fit the budget, else offloaded for the call (`choose_offload`);
        - tiled VAE decoding when an untiled decode would not fit in free accelerator memory;
        - after an out-of-memory error, once more with tiled decoding and the next offload mode down.
        """
        vae = base.components["vae"]

        def attempt(offload: Offload, tiled: bool) -> T:
            self.last_offload = offload
            with ExitStack() as stack:
                if tiled:
                    stack.enter_context(vae_tiling(vae))
                if offload != "none":
                    stack.enter_context(self._offloaded(pipe, offload))
                return call()

        with self.gpu_lock:
            offload = self.offload_for(pipe)
            estimate = decode_bytes(*size, self.device_config.dtype)
            needs_tiling = self.device_config.is_accelerator and estimate > self._free_accelerator_bytes()
            retry_offload = lower_memory_offload(offload) if self.device_config.is_accelerator else "none"
            return self.run_on_gpu(
                lambda: attempt(offload, needs_tiling), retry=lambda: attempt(retry_offload, True)
            )

    def offload_for(self, pipe: Any) -> Offload:
        """How `pipe`'s models run this time: promoted to the GPU when they fit, else offloaded."""
        if not self.device_config.is_accelerator:
            return "none"
        modules = {id(m): m for m in pipe.components.values() if isinstance(m, torch.nn.Module)}
        keys = [k for k, e in self._entries.items() if e.module is not None and id(e.module) in modules]
        fits = self._promote(keys)
        largest = max((module_bytes(m) for m in modules.values()), default=0)
        return choose_offload(
            self.offload, fits=fits, largest_bytes=largest, budget_bytes=self.budget.accelerator_bytes
        )

    @contextmanager
    def _offloaded(self, pipe: Any, offload: Offload) -> Iterator[None]:
        """diffusers' offload hooks on `pipe`'s (shared) components for one call, taken off after it, and
        every model back where it was: the next pipeline built around the same components must find them
        plain. (An adapter swapped into the UNet travels with it during the call.)"""
        log.info("running with %s offload", offload)
        before = {key: entry.device for key, entry in self._entries.items() if entry.module is not None}
        if offload == "model":
            pipe.enable_model_cpu_offload(device=self.device_config.device)
        else:  # diffusers moves a pipeline to RAM first only when its first model is on the GPU
            pipe.to("cpu")
            pipe.enable_sequential_cpu_offload(device=self.device_config.device)
        try:
            yield
        finally:
            pipe.remove_all_hooks()
            for key, device in before.items():
                entry = self._entries.get(key)
                if entry is not None:
                    entry.module.to(device)
                    entry.device = module_device(entry.module)

    def _measure_free_accelerator_bytes(self) -> int:
        device = self.device_config.device
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        if device.type == "mps":
            return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        return 0

    # -- what is loaded, for people ----------------------------------------------------------------------

    def memory_report(self) -> dict[str, Any]:
        """What is loaded, where, and how big, with the budget: the Memory panel and the /memory endpoint."""
        with self.gpu_lock:
            units = self.units()
            report: dict[str, Any] = {
                "device": self.device_config.describe(),
                "budget_bytes": {"accelerator": self.budget.accelerator_bytes, "ram": self.budget.ram_bytes},
                "offload": self.offload,
                "last_offload": self.last_offload,
                "used_bytes": {
                    where: sum(u.size for u, _ in units.values() if u.place == where)
                    for where in ("accelerator", "cpu")
                },
                "models": [
                    {
                        "name": name,
                        "where": unit.place,
                        "bytes": unit.size,
                        "in_use": unit.in_use,
                        "components": {k.component: self._entries[k].size_bytes for k in keys},
                    }
                    for name, (unit, keys) in units.items()
                ],
            }
            if self.device_config.device.type == "cuda":
                report["torch_allocated_bytes"] = torch.cuda.memory_allocated(self.device_config.device)
                report["torch_peak_bytes"] = torch.cuda.max_memory_allocated(self.device_config.device)
            return report

    def _touch(self, keys: list[CacheKey]) -> None:
        now = time.monotonic()
        for key in keys:
            self._entries[key].last_used = now

    def _evict_base_models(self, room_for: int) -> None:
        def last_used(base: BaseModel) -> float:
            return max(self._entries[k].last_used for k in base.keys)

        idle = [b for b in self._base_models.values() if all(self._entries[k].users == 0 for k in b.keys)]
        for base in sorted(idle, key=last_used):
            if len(self._base_models) + room_for <= self.max_base_models:
                break
            self.release(base.source.location)

    def release(self, location: str) -> None:
        """Drop a base model and every entry of it; memory returns once no pipeline refers to it."""
        with self.gpu_lock:
            base = self._base_models.pop(location, None)
            if base is None:
                return
            for key in base.keys:
                self._entries.pop(key, None)
            base.components.clear()
            base.extras.clear()
            log.info("released %s", location)
        free_memory()

    def clear(self) -> None:
        for location in list(self._base_models):
            self.release(location)

    # -- what is loaded ----------------------------------------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        return list(self._entries.values())

    def total_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self.entries())

    def loaded_sources(self) -> list[str]:
        return list(self._base_models)


@contextmanager
def vae_tiling(vae: Any) -> Iterator[None]:
    """Decode in tiles for the block (the VAE is shared: its own setting comes back after)."""
    was_tiled = getattr(vae, "use_tiling", False)
    vae.enable_tiling()
    try:
        yield
    finally:
        if not was_tiled:
            vae.disable_tiling()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif torch.backends.mps.is_available():
        torch.mps.empty_cache()
