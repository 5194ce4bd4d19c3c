"""Memory budgets and the decisions that follow from them, as plain arithmetic the cache applies.

- The accelerator budget is what the studio may hold on the GPU (default: free memory at start minus a
  reserve for activations); the RAM budget is what it may keep in CPU memory (weights demoted from the GPU,
  or all weights on a CPU machine).
- Making room demotes idle models from the GPU to RAM, least recently used first, then drops idle models
  from RAM the same way. A model in use by a running job is never touched.
- When the models of a run do not fit on the GPU even after that, the run offloads instead of failing:
  by model (each model visits the GPU while it computes) when the largest one fits, else sequentially
  (layer by layer). `choose_offload` decides; `--offload` can force a mode.
- VAE decoding of a large image can need more memory than the weights; `decode_bytes` estimates it so
  tiled decoding is switched on only when it is needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import torch

GIB = 1024**3
ACTIVATION_RESERVE = 2 * GIB  # left free on the GPU for activations when the budget is the default

Place = Literal["accelerator", "cpu"]
Offload = Literal["none", "model", "sequential"]
OFFLOAD_CHOICES = ("auto", "none", "model", "sequential")


@dataclass(frozen=True)
class MemoryBudget:
    accelerator_bytes: int | None  # None: no accelerator, or no limit
    ram_bytes: int | None  # None: no limit


def total_ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_budget(
    device: torch.device, accelerator_gib: float | None = None, ram_gib: float | None = None
) -> MemoryBudget:
    """The budget from flags when given, else: free GPU memory minus a reserve, and 3/4 of the RAM."""
    accelerator = None
    if accelerator_gib is not None:
        accelerator = int(accelerator_gib * GIB)
    elif device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        accelerator = max(free - ACTIVATION_RESERVE, free // 2)
    ram = int(ram_gib * GIB) if ram_gib is not None else total_ram_bytes() * 3 // 4
    return MemoryBudget(accelerator, ram)


@dataclass
class Unit:
    """What is placed and evicted as one: a base model's components together, or one other model."""

    name: str
    size: int
    place: Place
    last_used: float
    in_use: bool = False


@dataclass(frozen=True)
class Step:
    action: Literal["demote", "drop"]
    unit: str


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    fits: bool = True  # False: even with every idle model moved out, the request does not fit


def plan_room(
    units: list[Unit], budget: MemoryBudget, *, accelerator_needed: int = 0, ram_needed: int = 0
) -> Plan:
    """Which idle units to demote to RAM and which to drop so that `*_needed` more bytes fit.

    On a machine without an accelerator everything lives in RAM and only the RAM budget applies.
    """
    plan = Plan()
    place = {unit.name: unit.place for unit in units}
    by_age = sorted(units, key=lambda unit: unit.last_used)

    def used(where: Place) -> int:
        return sum(unit.size for unit in units if place[unit.name] == where)

    if budget.accelerator_bytes is not None:
        for unit in by_age:
            if used("accelerator") + accelerator_needed <= budget.accelerator_bytes:
                break
            if place[unit.name] == "accelerator" and not unit.in_use:
                plan.steps.append(Step("demote", unit.name))
                place[unit.name] = "cpu"
        plan.fits = used("accelerator") + accelerator_needed <= budget.accelerator_bytes
    if budget.ram_bytes is not None:
        for unit in by_age:
            if used("cpu") + ram_needed <= budget.ram_bytes:
                break
            if place[unit.name] == "cpu" and not unit.in_use:
                plan.steps.append(Step("drop", unit.name))
                place[unit.name] = "dropped"  # type: ignore[assignment]
        plan.fits = plan.fits and used("cpu") + ram_needed <= budget.ram_bytes
    return plan


def choose_offload(requested: str, *, fits: bool, largest_bytes: int, budget_bytes: int | None) -> Offload:
    """How a run on the accelerator places its models: all on the GPU when they fit the budget (`fits`),
    else one model at a time on the GPU when the largest fits, else layer by layer. A forced mode wins."""
    if requested != "auto":
        return requested  # type: ignore[return-value]
    if fits:
        return "none"
    if budget_bytes is None or largest_bytes <= budget_bytes:
        return "model"
    return "sequential"


def lower_memory_offload(mode: Offload) -> Offload:
    """The next mode down, for the retry after an out-of-memory error."""
    return "model" if mode == "none" else "sequential"


def decode_bytes(width: int, height: int, dtype: torch.dtype) -> int:
    """About the peak activation memory of decoding one width×height image with an SD-family VAE.

    The decoder's last blocks run 128 and 256 channels at full and half resolution with a few tensors alive
    at once: about 700 values per output pixel. Deliberately rough and on the high side: guessing high only
    costs tiled decoding's small slowdown, guessing low costs an out-of-memory retry.
    """
    return width * height * 700 * torch.tensor([], dtype=dtype).element_size()
