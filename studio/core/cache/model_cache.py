"""The model cache: one per process, shared by every pipeline, composed of parts with one job each.

- registry.py: what is loaded, under which key, its bytes and its place;
- placement.py: one byte budget; idle models make room;
- lease.py: a run's `Lease` fetches and pins every model it uses until the run ends;
- execution.py: the GPU lock, offload hooks, tiled decoding, the out-of-memory retry.

Pipelines ask it for models (`lease()`) and for a place to run (`denoise`, `run_on_gpu`, `gpu_lock`),
nothing more. A base model's components are loaded once; every task builds its diffusers pipeline around
the very same objects (`BaseModel.build`), with a fresh scheduler per request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from studio.core.cache.base_model import BaseModel
from studio.core.cache.execution import Execution, measure_free_accelerator_bytes
from studio.core.cache.kinds import ModelKind
from studio.core.cache.lease import Lease
from studio.core.cache.placement import Placement, free_memory
from studio.core.cache.registry import CacheEntry, Registry
from studio.core.devices import DeviceConfig
from studio.core.memory import MemoryBudget, default_budget
from studio.core.models import ModelSource, load_denoiser, load_pipeline
from studio.core.openvino_backend import ConvertedModels, choose_backend, openvino_installed
from studio.core.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of the cache: its entries, their bytes, the base models loaded, how many times weights
    were read from disk, and how the last denoising call ran (offloaded or not)."""

    entries: list[CacheEntry]
    total_bytes: int
    loaded_sources: list[str]
    weight_loads: int
    last_offload: str


class ModelCache:
    def __init__(
        self,
        device_config: DeviceConfig,
        *,
        offline: bool = False,
        budget: MemoryBudget | None = None,
        offload: str = "auto",
        loader: Callable[..., Any] = load_pipeline,
        denoiser_loader: Callable[..., Any] = load_denoiser,
        free_accelerator_bytes: Callable[[], int] | None = None,
        backend: str = "torch",
        converted: ConvertedModels | None = None,
    ) -> None:
        self.device_config = device_config
        self.backend = backend  # what runs diffusion calls: "torch" or (on a CPU) "openvino"
        self.converted = converted  # where OpenVINO's converted models are kept
        self.offline = offline
        # Held around loading, moving and each piece of GPU work (never across a yield).
        self.gpu_lock = threading.RLock()
        self.registry = Registry()
        self.placement = Placement(self.registry, device_config, budget or MemoryBudget(None, None), offload)
        self.execution = Execution(
            self.placement,
            self.gpu_lock,
            free_accelerator_bytes or (lambda: measure_free_accelerator_bytes(device_config.device)),
        )
        self._loaders = {"load_pipeline": loader, "load_denoiser": denoiser_loader}

    @classmethod
    def for_machine(
        cls,
        device_config: DeviceConfig,
        *,
        offline: bool,
        gpu_budget_gib: float | None = None,
        ram_budget_gib: float | None = None,
        offload: str = "auto",
        backend: str = "auto",
        openvino_folder: Path = Settings.openvino_cache,
    ) -> ModelCache:
        """A cache with the default budget for this machine, or the one given in GiB, and the backend
        `backend` ("auto", "torch", "openvino") comes to here (studio/core/openvino_backend.py)."""
        budget = default_budget(device_config.device, gpu_budget_gib, ram_budget_gib)
        chosen, notice = choose_backend(backend, device_config, installed=openvino_installed())
        if notice:
            log.warning(notice)
        return cls(
            device_config,
            offline=offline,
            budget=budget,
            offload=offload,
            backend=chosen,
            converted=ConvertedModels(openvino_folder) if chosen == "openvino" else None,
        )

    # -- models for a run --------------------------------------------------------------------------------

    @contextmanager
    def lease(self, *, local_only: bool = False) -> Iterator[Lease]:
        """Fetch a run's models through the lease: each stays pinned (never evicted) until the block ends.
        `local_only`: load only what is on this machine, whether or not the hub may be reached."""
        offline = self.offline or local_only
        lease = Lease(
            self.placement,
            self.gpu_lock,
            offline=offline,
            backend=self.backend,
            converted=self.converted,
            **self._loaders,
        )
        try:
            yield lease
        finally:
            lease.release()

    def load_base_model(
        self, source: ModelSource, *, local_only: bool = False, released_ok: bool = False
    ) -> BaseModel:
        """Load the base model for `source` if it is not loaded yet, and return it, pinned by no run: to
        preload it, or to inspect it (with `released_ok`, as it is, torch weights another backend let go
        left out). A run gets its models through `lease()`, which pins them."""
        with self.lease(local_only=local_only) as lease:
            return lease.base_model(source, released_ok=released_ok)

    # -- a place to run ----------------------------------------------------------------------------------

    def denoise(self, base: BaseModel, size: tuple[int, int], call: Callable[[], T], *, pipe: Any) -> T:
        return self.execution.denoise(base, size, call, pipe=pipe)

    def run_on_gpu(self, work: Callable[[], T], *, retry: Callable[[], T] | None = None) -> T:
        return self.execution.run_on_gpu(work, retry=retry)

    # -- what is loaded, for people ----------------------------------------------------------------------

    def resident(self, kind: ModelKind, *, wait: bool = True) -> list[Any]:
        """The models of `kind` (one without parts) loaded now: what a caller may use without loading.
        Not `wait`ing (an instant action), none while a run holds the GPU."""
        if not self.gpu_lock.acquire(blocking=wait):
            return []
        try:
            return [entry.value for entry in self.registry.entries() if entry.key.component == kind.component]
        finally:
            self.gpu_lock.release()

    def memory_report(self) -> dict[str, Any]:
        """What is loaded, where, and how big, with the budget: the Memory panel and the /memory endpoint."""
        with self.gpu_lock:
            units = self.registry.units()
            budget = self.placement.budget
            report: dict[str, Any] = {
                "device": self.device_config.describe(),
                "budget_bytes": {"accelerator": budget.accelerator_bytes, "ram": budget.ram_bytes},
                "offload": self.placement.offload,
                "last_offload": self.execution.last_offload,
                "used_bytes": {
                    where: sum(u.size for u in units.values() if u.place == where)
                    for where in ("accelerator", "cpu")
                },
                "models": [
                    {
                        "name": name,
                        "where": unit.place,
                        "bytes": unit.size,
                        "in_use": unit.in_use,
                        "components": {e.key.component: e.size_bytes for e in self.registry.entries(name)},
                    }
                    for name, unit in units.items()
                ],
            }
            if self.device_config.device.type == "cuda":
                report["torch_allocated_bytes"] = torch.cuda.memory_allocated(self.device_config.device)
                report["torch_peak_bytes"] = torch.cuda.max_memory_allocated(self.device_config.device)
            return report

    def free_idle(self) -> int:
        """Drop every model no run is using; returns the bytes let go."""
        with self.gpu_lock:
            return self.placement.free_idle()

    def clear(self, *, collect: bool = True) -> None:
        """Drop every model; `collect`: then run a full garbage collection (and empty the GPU's cache), which
        in a process holding many objects takes seconds."""
        with self.gpu_lock:
            for name in list(self.registry.units()):
                self.registry.drop(name)
        if collect:
            free_memory()

    def stats(self) -> CacheStats:
        """What is loaded now, and how much loading it took: for tests and benchmarks."""
        entries = self.registry.entries()
        return CacheStats(
            entries=entries,
            total_bytes=sum(entry.size_bytes for entry in entries),
            loaded_sources=list(self.registry.base_models),
            weight_loads=self.registry.weight_loads,
            last_offload=self.execution.last_offload,
        )
