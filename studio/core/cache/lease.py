"""A `Lease`: the models one run uses, each fetched (loaded when needed) and pinned until the run ends.

Pipelines get every model through one; `ModelCache.lease()` hands it out. Where the models live and what
makes room is placement.py's; what is loaded, registry.py's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from studio.core.cache.base_model import BaseModel
from studio.core.cache.kinds import ModelKind
from studio.core.cache.placement import Placement
from studio.core.cache.registry import CacheEntry, CacheKey
from studio.core.families import family_of
from studio.core.models import ModelSource, denoiser_quantization, shareable_parts, weight_bytes_on_disk
from studio.core.openvino_backend import ConvertedModels, can_let_go, let_go, read_back

log = logging.getLogger(__name__)

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
        backend: str,
        converted: ConvertedModels | None,
        load_pipeline: Loader,
        load_denoiser: Loader,
    ) -> None:
        self.placement = placement
        self.registry = placement.registry
        # What a run needs to know of the cache: its device, whether it may reach the hub, what runs the
        # diffusion calls ("torch" or "openvino") and where OpenVINO's converted models are kept.
        self.device_config = placement.device_config
        self.offline = offline
        self.backend = backend
        self.converted = converted
        self.lock = lock
        self._load_pipeline = load_pipeline
        self._load_denoiser = load_denoiser
        self._held: list[CacheEntry] = []

    def base_model(self, source: ModelSource, *, released_ok: bool = False) -> BaseModel:
        """The base model for `source`, loaded once, shared by every task, with all its torch weights
        (read back where another backend let some go), unless `released_ok`: the run will not use them."""
        with self.lock:
            base = self.registry.base_models.get(source.location)
            taken: list[CacheEntry] = []  # parts loaded for another model that this one takes
            if base is None:
                identities = shareable_parts(source)
                loaded = self.registry.loaded_parts(identities, self.device_config.dtype_name)
                taken = list(loaded.values())
                self._hold(taken, offloadable=True)  # kept while room is made: they need none
                needed = weight_bytes_on_disk(source) - sum(entry.size_bytes for entry in taken)
                self.placement.make_room(ram_needed=max(0, needed))
                reuse = {name: entry.value for name, entry in loaded.items()}
                pipe = self._load_pipeline(source, self.device_config, offline=self.offline, reuse=reuse)
                self.registry.weight_loads += 1
                class_name = type(pipe).__name__
                components = {name: value for name, value in pipe.components.items() if value is not None}
                settings = {
                    name: value
                    for name, value in pipe.config.items()
                    if not name.startswith("_") and name not in pipe.components
                }
                family = family_of(class_name)
                quantized = denoiser_quantization(self.device_config, family, source)
                base = BaseModel(source, family.name, class_name, components, settings=settings,
                                 quantized=quantized)  # fmt: skip
                self.registry.add_base_model(base, self.device_config.dtype_name, identities)
            uses = self.registry.entries(source.location) + self.registry.shared_with(base)
            self._hold(
                [entry for entry in uses if all(entry is not held for held in taken)], offloadable=True
            )
            if base.released and not released_ok:
                self.read_back_weights(base)
            return base

    def read_back_weights(self, base: BaseModel) -> None:
        """Read back the torch weights another backend let go, for a run torch runs."""
        with self.lock:
            log.info("reading back the torch weights of %s", ", ".join(sorted(base.released)))
            for name in sorted(base.released):
                read_back(
                    base.components[name], base.source.location, name, from_hub=base.source.kind == "hub"
                )
            base.released.clear()

    def let_go_weights(self, base: BaseModel, component: str) -> bool:
        """Let go of a base model component's torch weights while another backend runs it, unless another
        run holds it too or they could not be read back; returns whether they were let go."""
        with self.lock:
            key = CacheKey(base.source.location, component, self.device_config.dtype_name)
            entry = self.registry.get(key)
            module = base.components.get(component)
            if entry is None or entry.pins > 1 or not can_let_go(module, base.source.kind):
                return False
            let_go(module)
            base.released.add(component)
            return True

    def inpaint_denoiser(self, base: BaseModel, source: ModelSource) -> Any:
        """The denoiser of a dedicated inpainting checkpoint (a 9-channel UNet, a FLUX.1 Fill transformer),
        placed and evicted with `base`, whose text encoders and VAE it shares (an inpainting checkpoint's
        are the base model's)."""
        component = base.rules.denoiser
        with self.lock:
            key = CacheKey(source.location, component, self.device_config.dtype_name)
            entry = self.registry.get(key)
            if entry is None:
                self.placement.make_room(ram_needed=weight_bytes_on_disk(source))
                denoiser = self._load_denoiser(source, self.device_config, component, offline=self.offline)
                self.registry.weight_loads += 1
                entry = self.registry.add(key, denoiser, unit=base.source.location, module=denoiser)
            self._hold([entry], offloadable=True)
            return entry.value

    def model(
        self,
        kind: ModelKind,
        source: str,
        load: Callable[[], Any],
        *,
        part: str = "",
        variant: str | None = None,
        module: Callable[[Any], Any] = lambda value: value,
        nbytes: int | Callable[[Any], int] | None = None,
        part_of: BaseModel | None = None,
        on_drop: Callable[[Any], None] | None = None,
    ) -> Any:
        """A model of `kind` (an upscaler, an ONNX session, a ControlNet) from `source`, loaded once; its
        key is the kind's (`part` and `variant` tell apart several of one source).

        `module` picks the torch module inside the value; `nbytes` sizes a value that is not one (or
        is computed from it). An offloadable kind (a pipeline component) may wait in RAM for an offloaded
        run; any other model always goes to the compute device. `part_of`: it lives inside a base model's
        components (a LoRA), so it is placed and dropped with it; `on_drop(value)` then takes it out.
        """
        key = kind.key(source, self.device_config, part=part, variant=variant)
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
            self._hold([entry], offloadable=kind.offloadable)
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
