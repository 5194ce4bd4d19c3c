"""Placement: which models are on the GPU, which wait in RAM, which go, under one byte budget.

- A run fetches every model it uses through a `Lease` (lease.py), which pins each one from the moment it
  is fetched until the run ends: base models, inpainting UNets, ControlNets, IP-Adapters, upscalers, ONNX
  sessions. Pinned models are never demoted or dropped.
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

import torch

from studio.core.cache.registry import CacheEntry, Registry
from studio.core.devices import DeviceConfig
from studio.core.memory import OFFLOAD_CHOICES, MemoryBudget, plan_room

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


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif torch.backends.mps.is_available():
        torch.mps.empty_cache()
