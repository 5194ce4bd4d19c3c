"""One model cache per process, shared by every pipeline.

- Entries are keyed by what they are (where the model comes from, which component, dtype) and hold the
  loaded objects with their size in bytes and the device they live on.
- A base model's components are loaded once. Every task builds its diffusers pipeline around the very same
  component objects (`BaseModel.build`), with a fresh scheduler per request: schedulers are stateful.
- All GPU work is serialized by `gpu_lock`, held around loading and around each image's denoising (never
  across a yield: Gradio resumes generators on any thread).
- Entries used by a running job are never evicted. Base models beyond `max_base_models` are dropped least
  recently used first; budgets in bytes and offloading build on the same entry bookkeeping.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from studio.devices import DeviceConfig
from studio.models import ModelSource, family_of, load_pipeline, load_unet
from studio.presets import SamplerPreset

log = logging.getLogger(__name__)


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
    ) -> None:
        self.device_config = device_config
        self.offline = offline
        self.max_base_models = max_base_models
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
                return base
            self._evict_base_models(room_for=1)
            pipe = self._loader(source, self.device_config, offline=self.offline)
            self.weight_loads += 1
            dtype = self.device_config.dtype_name
            keys = []
            for name, value in pipe.components.items():
                if value is None or name == "scheduler":
                    continue
                key = CacheKey(source.location, name, dtype)
                self._entries[key] = CacheEntry(key, value, module_bytes(value), module_device(value))
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
            return base

    def model(
        self,
        key: CacheKey,
        load: Callable[[], Any],
        *,
        module: Callable[[Any], Any] = lambda v: v,
        nbytes: int | None = None,
    ) -> Any:
        """Any other model (an upscaler, an ONNX session), loaded once under `key` and kept as an entry.

        `module` picks the torch module inside the value, whose bytes and device the entry records;
        `nbytes` gives the size of a value that is not a torch module (an ONNX session: its file size).
        """
        with self.gpu_lock:
            entry = self._entries.get(key)
            if entry is None:
                value = load()
                self.weight_loads += 1
                inner = module(value)
                size = module_bytes(inner) if nbytes is None else nbytes
                entry = CacheEntry(key, value, size, module_device(inner))
                self._entries[key] = entry
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
                self._entries[key] = CacheEntry(key, unet, module_bytes(unet), module_device(unet))
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


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif torch.backends.mps.is_available():
        torch.mps.empty_cache()
