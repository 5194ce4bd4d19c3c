"""Execution: GPU work one job at a time, in the lowest-memory way it needs.

- `run_on_gpu` holds the lock around a piece of work; after an out-of-memory error it frees idle models and
  runs a lower-memory version of the work once, then gives a plain message.
- `denoise` runs a diffusion call: its models promoted to the GPU when they fit the budget, else with
  diffusers' offload hooks on the shared components for that one call (taken off again after); the VAE
  decodes in tiles when an estimate says an untiled decode would not fit; the out-of-memory retry adds
  tiling and the next offload mode down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import torch

from studio.core.cache.base_model import BaseModel
from studio.core.cache.placement import Placement, free_memory
from studio.core.cache.registry import module_bytes
from studio.core.errors import OutOfMemory
from studio.core.memory import Offload, choose_offload, decode_bytes, lower_memory_offload

log = logging.getLogger(__name__)

T = TypeVar("T")
OUT_OF_MEMORY_ADVICE = (
    "Out of memory, even after freeing what could be freed and retrying with less memory. "
    "Try fewer images, a smaller size or tile, or a smaller model."
)


class Execution:
    def __init__(
        self, placement: Placement, lock: threading.RLock, free_accelerator_bytes: Callable[[], int]
    ) -> None:
        self.placement = placement
        self.device_config = placement.device_config
        self.lock = lock
        self.free_accelerator_bytes = free_accelerator_bytes
        self.last_offload: Offload = "none"  # how the last diffusion call ran

    def run_on_gpu(self, work: Callable[[], T], *, retry: Callable[[], T] | None = None) -> T:
        """`work()` under the GPU lock; after an out-of-memory error, free what can be freed and run
        `retry()` (a lower-memory way to do the same work) once; if that fails too, say what to change."""
        with self.lock:
            try:
                return work()
            except torch.OutOfMemoryError:
                log.warning("out of memory; freeing idle models and retrying in a lower-memory mode")
            # Outside the except block, so the failed attempt's frames and activations can be freed.
            self.placement.free_idle()
            try:
                return (retry or work)()
            except torch.OutOfMemoryError:
                pass
            free_memory()
            raise OutOfMemory(OUT_OF_MEMORY_ADVICE)

    def denoise(self, base: BaseModel, size: tuple[int, int], call: Callable[[], T], *, pipe: Any) -> T:
        """`call()`, a diffusion call of `pipe` (built on `base`) for `size` images, as memory allows."""
        vae = base.components["vae"]

        def attempt(offload: Offload, tiled: bool) -> T:
            self.last_offload = offload
            with ExitStack() as stack:
                if tiled:
                    stack.enter_context(vae_tiling(vae))
                if offload != "none":
                    stack.enter_context(self._offloaded(pipe, offload))
                return call()

        with self.lock:
            accelerator = self.device_config.is_accelerator
            offload = self.offload_for(pipe)
            estimate = decode_bytes(*size, self.device_config.dtype)
            needs_tiling = accelerator and estimate > self.free_accelerator_bytes()
            retry_offload = lower_memory_offload(offload) if accelerator else "none"
            return self.run_on_gpu(
                lambda: attempt(offload, needs_tiling), retry=lambda: attempt(retry_offload, True)
            )

    def offload_for(self, pipe: Any) -> Offload:
        """How `pipe`'s models run this time: promoted to the GPU when they fit, else offloaded."""
        if not self.device_config.is_accelerator:
            return "none"
        modules = {id(m): m for m in pipe.components.values() if isinstance(m, torch.nn.Module)}
        entries = [e for e in self.placement.registry.entries() if id(e.module) in modules]
        fits = self.placement.promote(entries)
        largest = max((module_bytes(m) for m in modules.values()), default=0)
        return choose_offload(
            self.placement.offload,
            fits=fits,
            largest_bytes=largest,
            budget_bytes=self.placement.budget.accelerator_bytes,
        )

    @contextmanager
    def _offloaded(self, pipe: Any, offload: Offload) -> Iterator[None]:
        """diffusers' offload hooks on `pipe`'s (shared) components for one call, taken off after it, and
        every model back where it was: the next pipeline built around the same components must find them
        plain. (An adapter swapped into the UNet travels with it during the call.)"""
        log.info("running with %s offload", offload)
        movable = [entry for entry in self.placement.registry.entries() if entry.module is not None]
        before = {id(entry): entry.device for entry in movable}
        if offload == "model":
            pipe.enable_model_cpu_offload(device=self.device_config.device)
        else:  # diffusers moves a pipeline to RAM first only when its first model is on the GPU
            pipe.to("cpu")
            pipe.enable_sequential_cpu_offload(device=self.device_config.device)
        try:
            yield
        finally:
            pipe.remove_all_hooks()
            for entry in movable:
                entry.moved_to(before[id(entry)])


def measure_free_accelerator_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "mps":
        return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
    return 0


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
