"""The registry: what is loaded, under which key, how many bytes it holds and where it lives.

Entries are grouped into units, placed and evicted as one (studio/core/memory.py plans over units): a base
model's components and extras together under the model's location, every other model alone. The registry
holds no policy; placement decides what moves and what goes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from studio.core.cache.base_model import BaseModel
from studio.core.memory import Place, Unit


@dataclass(frozen=True)
class CacheKey:
    source: str  # hub id or absolute path
    component: str  # "unet", "vae", "text_encoder", "controlnet", ...
    dtype: str
    variant: str | None = None

    @property
    def unit(self) -> str:
        """The unit a model outside any base model is placed and evicted as."""
        return f"{self.component}: {self.source}"


@dataclass
class CacheEntry:
    key: CacheKey
    value: Any
    unit: str  # the name of the unit it is placed and evicted with
    size_bytes: int
    device: str
    module: Any = None  # the torch module to move between the GPU and RAM; None: it cannot move
    last_used: float = field(default_factory=time.monotonic)
    pins: int = 0  # runs holding it; a pinned entry is never moved out or dropped
    on_drop: Any = None  # called when it is dropped (a LoRA taken out of the UNet it was put into)
    identity: str | None = None  # what a part other models can share is (models.shareable_parts)

    @property
    def place(self) -> Place:
        return "accelerator" if self.device.startswith(("cuda", "mps")) else "cpu"

    def moved_to(self, device: torch.device | str) -> None:
        if self.module is not None:
            self.module.to(device)
            self.device = module_device(self.module)


def module_bytes(value: Any) -> int:
    """Bytes held by a module's parameters and buffers (0 for tokenizers, configs and the like)."""
    if not isinstance(value, torch.nn.Module):
        return 0
    return sum(tensor_bytes(t) for t in [*value.parameters(), *value.buffers()])


def tensor_bytes(tensor: torch.Tensor) -> int:
    """What a tensor holds; a quantized one (a tensor subclass, as torchao's int8 weights) holds its inner
    tensors (the 8-bit values and their scales), not what its element size says."""
    tensor = getattr(tensor, "data", tensor)  # a Parameter's own tensor
    if type(tensor) is not torch.Tensor and hasattr(tensor, "__tensor_flatten__"):
        inner, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in inner)
    return tensor.numel() * tensor.element_size()


def module_device(value: Any) -> str:
    if isinstance(value, torch.nn.Module):
        for tensor in value.parameters():
            return str(tensor.device)
    return "-"


class Registry:
    def __init__(self) -> None:
        self._entries: dict[CacheKey, CacheEntry] = {}
        self.base_models: dict[str, BaseModel] = {}  # by location: the unit name of its entries
        self.weight_loads = 0  # how many times weights were read from disk; sharing keeps this low

    def get(self, key: CacheKey) -> CacheEntry | None:
        return self._entries.get(key)

    def add(
        self,
        key: CacheKey,
        value: Any,
        *,
        unit: str,
        module: Any = None,
        nbytes: int | None = None,
        on_drop: Any = None,
    ) -> CacheEntry:
        """Record a loaded value; `module` is the torch module inside it (its bytes and device), `nbytes`
        the size of a value that is not one (an ONNX session: its file size)."""
        size = module_bytes(module) if nbytes is None else nbytes
        movable = module if isinstance(module, torch.nn.Module) and size else None
        entry = CacheEntry(key, value, unit, size, module_device(module), module=movable, on_drop=on_drop)
        self._entries[key] = entry
        return entry

    def add_base_model(self, base: BaseModel, dtype: str, identities: dict[str, str]) -> None:
        """Record a loaded base model: one entry per component, the scheduler kept only as a config holder
        (every request builds its own instance). A part it shares with a model loaded before keeps its
        one entry there; `identities` say what its shareable parts are, for models loaded after."""
        location = base.source.location
        self.base_models[location] = base
        shared = {id(entry.module) for entry in self.shared_with(base)}
        for name, value in base.components.items():
            if id(value) not in shared:
                entry = self.add(CacheKey(location, name, dtype), value, unit=location, module=value)
                entry.identity = identities.get(name)

    def loaded_parts(self, identities: dict[str, str], dtype: str) -> dict[str, CacheEntry]:
        """Of the parts `identities` names, the entries of those loaded already (for another model), by
        component name."""
        loaded = {e.identity: e for e in self._entries.values() if e.identity and e.key.dtype == dtype}
        return {name: loaded[identity] for name, identity in identities.items() if identity in loaded}

    def shared_with(self, base: BaseModel) -> list[CacheEntry]:
        """The entries of other units whose models `base` uses too (a text encoder two models share)."""
        ids = {id(value) for value in base.components.values()}
        location = base.source.location
        return [
            e
            for e in self._entries.values()
            if e.unit != location and e.module is not None and id(e.module) in ids
        ]

    def entries(self, unit: str | None = None) -> list[CacheEntry]:
        return [e for e in self._entries.values() if unit is None or e.unit == unit]

    def units(self) -> dict[str, Unit]:
        """Every unit by name, as the planner sees it."""
        grouped: dict[str, list[CacheEntry]] = {}
        for entry in self._entries.values():
            grouped.setdefault(entry.unit, []).append(entry)
        return {
            name: Unit(
                name=name,
                size=sum(e.size_bytes for e in entries),
                place="accelerator" if any(e.place == "accelerator" for e in entries) else "cpu",
                last_used=max(e.last_used for e in entries),
                in_use=any(e.pins > 0 for e in entries),
            )
            for name, entries in grouped.items()
        }

    def drop(self, unit: str) -> None:
        """Forget a unit; its memory returns once no pipeline refers to it. A part another base model
        shares moves to that model's unit, under the name that model gives it."""
        base = self.base_models.pop(unit, None)
        for key in [key for key, entry in self._entries.items() if entry.unit == unit]:
            if not self._rehome(self._entries[key]):
                self.forget(key)
        if base is not None:
            base.components.clear()  # a pipeline still holding the BaseModel no longer keeps the weights

    def _rehome(self, entry: CacheEntry) -> bool:
        """Move a shared part to a base model still using it; False when none is."""
        if entry.module is None:
            return False
        for base in self.base_models.values():
            name = next((n for n, value in base.components.items() if value is entry.module), None)
            if name is not None:
                del self._entries[entry.key]
                entry.key = CacheKey(base.source.location, name, entry.key.dtype)
                entry.unit = base.source.location
                self._entries[entry.key] = entry
                return True
        return False

    def forget(self, key: CacheKey) -> None:
        """Forget one entry (of a unit that stays, as a LoRA leaves its base model)."""
        entry = self._entries.pop(key)
        if entry.on_drop is not None:
            entry.on_drop()
