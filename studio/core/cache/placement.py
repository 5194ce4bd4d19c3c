"""Placement: which models are on the GPU, which wait in RAM, which go, under one byte budget.

- A run fetches every model it uses through a `Lease`, which pins each one from the moment it is fetched
  until the run ends: base models, inpainting UNets, ControlNets, IP-Adapters, upscalers, ONNX sessions.
  Pinned models are never demoted or dropped.
- Room is planned by the pure planner in studio/core/memory.py: idle models leave the GPU least recently
  used first, then leave RAM the same way. Before a base model is read from disk, room is made for the
  size of its weight files, so the old and the new model are not in RAM together when the budget cannot
  hold both.
- Models load into RAM and are promoted to the compute device when the budget holds them. One that does
  not fit stays in RAM for an offloaded run (studio/core/memory.py `choose_offload`), unless it cannot be
  offloaded (an upscaler: it always goes to the device).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from studio.core.cache.base_model import BaseModel
from studio.core.cache.registry import CacheEntry, CacheKey, Registry
from studio.core.devices import DeviceConfig
from studio.core.memory import OFFLOAD_CHOICES, MemoryBudget, plan_room
from studio.core.models import ModelSource, family_of, weight_bytes_on_disk

log = logging.getLogger(__name__)


class Placement:
    def __init__(
        self, registry: Registry, device_config: DeviceConfig, budget: MemoryBudget, offload: str
    ) -> None:
        if offload not in OFFLOAD_CHOICES:
            raise ValueError(f"offload must be one of {', '.join(OFFLOAD_CHOICES)}, not {offload!r}")
        self.registry = registry
        self.device_config = device_config
        self.budget = budget
        self.offload = offload  # "auto": decided per run from the budget

    def make_room(self, *, accelerator_needed: int = 0, ram_needed: int = 0) -> bool:
        """Demote, then drop, idle models until the budget holds `*_needed` more bytes; False if it cannot."""
        units = self.registry.units()
        plan = plan_room(
            list(units.values()), self.budget, accelerator_needed=accelerator_needed, ram_needed=ram_needed
        )
        for step in plan.steps:
            if step.action == "demote":
                for entry in self.registry.entries(step.unit):
                    entry.moved_to("cpu")
                log.info("moved %s to CPU RAM to make room", step.unit)
            else:
                self.registry.drop(step.unit)
                log.info("dropped %s to make room", step.unit)
        if plan.steps:
            free_memory()
        if not plan.fits:
            log.info("the models of this run do not fit the memory budget")
        return plan.fits

    def offloads(self, fits: bool) -> bool:
        """Whether models that do (or do not) fit the GPU budget wait in RAM for an offloaded run."""
        return self.offload in ("model", "sequential") or (self.offload == "auto" and not fits)

    def promote(self, entries: list[CacheEntry], *, always: bool = False) -> bool:
        """Bring pinned models in RAM to the compute device, making room first. They stay in RAM when they
        do not fit (unless offloading is off, or `always`), for an offloaded run: returns whether they fit."""
        assert all(entry.pins for entry in entries), "only a run's pinned models are promoted"
        if not self.device_config.is_accelerator:
            return True
        in_ram = [entry for entry in entries if entry.module is not None and entry.place == "cpu"]
        if not in_ram:
            return True
        fits = self.make_room(accelerator_needed=sum(entry.size_bytes for entry in in_ram))
        if always or not self.offloads(fits):
            for entry in in_ram:
                entry.moved_to(self.device_config.device)
        return fits

    def free_idle(self) -> int:
        """Drop every model no run holds; returns the bytes let go."""
        idle = {name: unit for name, unit in self.registry.units().items() if not unit.in_use}
        for name in idle:
            self.registry.drop(name)
        free_memory()
        return sum(unit.size for unit in idle.values())


Loader = Callable[..., Any]


class Lease:
    """The models one run uses, each fetched (loaded when needed) and pinned until the run ends.

    Use it through `ModelCache.lease()`. Each fetch takes the cache's lock; no lock is held between
    fetches, since pipelines yield between images and Gradio resumes generators on any thread.
    """

    def __init__(
        self,
        placement: Placement,
        lock: threading.RLock,
        *,
        offline: bool,
        load_pipeline: Loader,
        load_unet: Loader,
    ) -> None:
        self.placement = placement
        self.registry = placement.registry
        self.device_config = placement.device_config
        self.lock = lock
        self.offline = offline
        self._load_pipeline = load_pipeline
        self._load_unet = load_unet
        self._held: list[CacheEntry] = []

    def base_model(self, source: ModelSource, *, released_ok: bool = False) -> BaseModel:
        """The base model for `source`, loaded once, shared by every task, with all its torch weights
        (read back where another backend let some go), unless `released_ok`: the run will not use them."""
        with self.lock:
            base = self.registry.base_models.get(source.location)
            if base is None:
                self.placement.make_room(ram_needed=weight_bytes_on_disk(source))
                pipe = self._load_pipeline(source, self.device_config, offline=self.offline)
                self.registry.weight_loads += 1
                class_name = type(pipe).__name__
                components = {name: value for name, value in pipe.components.items() if value is not None}
                base = BaseModel(source, family_of(class_name), class_name, components)
                self.registry.add_base_model(base, self.device_config.dtype_name)
            self._hold(self.registry.entries(source.location), offloadable=True)
            if base.released and not released_ok:
                self.read_back_weights(base)
            return base

    def read_back_weights(self, base: BaseModel) -> None:
        """Read back the torch weights another backend let go, for a run torch runs."""
        with self.lock:
            log.info("reading back the torch weights of %s", ", ".join(sorted(base.released)))
            base.restore()

    def let_go_weights(self, base: BaseModel, component: str) -> bool:
        """Let go of a base model component's torch weights while another backend runs it, unless another
        run holds it too or they could not be read back; returns whether they were let go."""
        with self.lock:
            key = CacheKey(base.source.location, component, self.device_config.dtype_name)
            entry = self.registry.get(key)
            if entry is None or entry.pins > 1 or not base.can_release(component):
                return False
            base.release(component)
            return True

    def inpaint_unet(self, base: BaseModel, source: ModelSource) -> Any:
        """The UNet of a dedicated inpainting checkpoint, placed and evicted with `base`, whose text encoders
        and VAE it shares (an inpainting checkpoint's are the base model's)."""
        with self.lock:
            key = CacheKey(source.location, "unet", self.device_config.dtype_name)
            entry = self.registry.get(key)
            if entry is None:
                self.placement.make_room(ram_needed=weight_bytes_on_disk(source))
                unet = self._load_unet(source, self.device_config, offline=self.offline)
                self.registry.weight_loads += 1
                entry = self.registry.add(key, unet, unit=base.source.location, module=unet)
            self._hold([entry], offloadable=True)
            return entry.value

    def model(
        self,
        key: CacheKey,
        load: Callable[[], Any],
        *,
        module: Callable[[Any], Any] = lambda value: value,
        nbytes: int | Callable[[Any], int] | None = None,
        offloadable: bool = False,
        part_of: BaseModel | None = None,
        on_drop: Callable[[Any], None] | None = None,
    ) -> Any:
        """Any other model (an upscaler, an ONNX session, a ControlNet), loaded once under `key`.

        `module` picks the torch module inside the value; `nbytes` sizes a value that is not one (or
        is computed from it). An
        `offloadable` model (a pipeline component) may wait in RAM for an offloaded run; any other model
        always goes to the compute device. `part_of`: it lives inside a base model's components (a LoRA),
        so it is placed and dropped with it; `on_drop(value)` then takes it out.
        """
        with self.lock:
            entry = self.registry.get(key)
            if entry is None:
                value = load()
                self.registry.weight_loads += 1
                unit = part_of.source.location if part_of is not None else key.unit
                dropped = (lambda value=value: on_drop(value)) if on_drop else None
                size = nbytes(value) if callable(nbytes) else nbytes
                entry = self.registry.add(
                    key, value, unit=unit, module=module(value), nbytes=size, on_drop=dropped
                )
            self._hold([entry], offloadable=offloadable)
            return entry.value

    def _hold(self, entries: list[CacheEntry], *, offloadable: bool) -> None:
        """Pin `entries` for this run; the cache gets back under its budget around them (a new load may
        have taken it over), and they go to the compute device when they fit."""
        for entry in entries:
            entry.pins += 1
        self._held.extend(entries)
        self.placement.make_room()
        self.placement.promote(entries, always=not offloadable)

    def release(self) -> None:
        with self.lock:
            now = time.monotonic()
            for entry in self._held:
                entry.pins -= 1
                entry.last_used = now
            self._held.clear()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif torch.backends.mps.is_available():
        torch.mps.empty_cache()
