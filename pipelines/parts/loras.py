"""LoRAs: small weight deltas on the base model, several at once, each with its weight, for one run.

A LoRA comes from the LoRA folder (`--loras`, by file name), a path, or the hub (`org/name`, or
`org/name/file.safetensors`). It is read once and put into the shared UNet or transformer (and text
encoders) as a peft adapter that stays there, its bytes counted with the base model in the cache, but
switched on only inside a run's own denoising calls, under the GPU lock, and off again after each: every
other run, tab and concurrent visitor sees the base model, whose weights are never changed. Every family
takes them (through its diffusers pipeline's own LoRA loader). It is recorded the way AUTOMATIC1111
records it: `Lora hashes: "name: 1a2b3c4d5e6f"`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download

from studio.core.access import inside
from studio.core.cache import BaseModel, Lease, ModelCache
from studio.core.cache.kinds import LORA
from studio.core.errors import InvalidRequest
from studio.core.models import HUB_ID, load_weights, weights_source

log = logging.getLogger(__name__)

LORA_CHOICE = re.compile(r"^\s*(?P<name>[^:]+?)\s*(?::\s*(?P<weight>[-+]?\d*\.?\d+))?\s*$")
MAX_WEIGHT = 4.0


@dataclass(frozen=True)
class LoraChoice:
    name: str
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoraChoice:
        """`name`, or `name:weight` (-4 to 4)."""
        match = LORA_CHOICE.match(text)
        if not match:
            raise InvalidRequest(f"LoRA {text!r}: give it as name or name:weight, e.g. detail:0.8.")
        weight = float(match.group("weight") or 1)
        if abs(weight) > MAX_WEIGHT:
            raise InvalidRequest(
                f"LoRA {match.group('name')}: the weight must be between -4 and 4 (got {weight:g})."
            )
        return cls(match.group("name"), weight)

    def __str__(self) -> str:
        return f"{self.name}:{self.weight:g}"


@dataclass(frozen=True)
class Adapter:
    """A LoRA put into the base model for this run: its adapter name there, weight, and what to record."""

    name: str
    weight: float
    choice: LoraChoice
    file_hash: str


class Loras:
    """Which LoRAs there are, and putting them into a base model through a run's lease."""

    def __init__(self, cache: ModelCache, folder: Path | None) -> None:
        self.cache = cache
        self.folder = folder
        self._hashes: dict[tuple[str, int, int], str] = {}  # by (path, size, mtime): read once

    def names(self) -> list[str]:
        if not self.folder or not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.safetensors") if not p.name.startswith("."))

    def check(self, choices: list[LoraChoice]) -> None:
        for choice in choices:
            self._locate(choice.name)

    def _locate(self, name: str) -> tuple[str, str | None]:
        """(where the LoRA is, its weight file within a hub repository if one is named)."""
        if self.folder:
            for candidate in (self.folder / f"{name}.safetensors", self.folder / name):
                in_folder = inside(candidate, [self.folder])  # not "../../elsewhere"
                if in_folder and candidate.is_file() and candidate.suffix == ".safetensors":
                    return str(candidate.resolve()), None
        path = Path(name).expanduser()
        if path.is_file():
            if path.suffix != ".safetensors":
                raise InvalidRequest(
                    f"LoRA {path.name}: only .safetensors files are loaded (pickles can run code)."
                )
            return str(path.resolve()), None
        if HUB_ID.match(name):
            return name, None
        repository, _, weight = name.rpartition("/")
        if HUB_ID.match(repository) and weight.endswith(".safetensors"):
            return repository, weight
        known = ", ".join(self.names()) or "none yet"
        raise InvalidRequest(
            f"Unknown LoRA {name!r}: not in the LoRA folder ({known}), "
            "not a .safetensors file and not a hub id."
        )

    def adapters(self, lease: Lease, base: BaseModel, pipe: Any, choices: list[LoraChoice]) -> list[Adapter]:
        """Each chosen LoRA put into `base` (loaded once, pinned for the run), ready for `loras_applied`."""
        adapters = []
        for choice in choices:
            file = self._local_file(choice.name, offline=lease.offline)
            # One adapter per LoRA and denoiser: an inpainting checkpoint's UNet or Fill transformer (kept
            # as long as its base model, as the LoRA is) takes its own copy, beside the text encoders' own.
            component = base.rules.denoiser
            denoiser = f"{base.source.location} {component} {id(pipe.components[component])}"
            name = "lora_" + hashlib.sha1(f"{file} in {denoiser}".encode()).hexdigest()[:12]
            lease.model(
                LORA,
                str(file),
                partial(self._load, pipe, file, name),
                variant=denoiser,
                module=lambda _: None,
                nbytes=file.stat().st_size,
                part_of=base,
                on_drop=lambda name, pipe=pipe: _take_out(pipe, name),
            )
            adapters.append(Adapter(name, choice.weight, choice, self._file_hash(file)))
        return adapters

    def _local_file(self, name: str, *, offline: bool) -> Path:
        """The LoRA's .safetensors file on this machine; one from the hub downloaded on first use."""
        location, weight_name = self._locate(name)
        if Path(location).is_file():
            return Path(location)
        pattern = weight_name or "*.safetensors"

        def download(local_only: bool) -> Path:
            folder = snapshot_download(location, allow_patterns=[pattern], local_files_only=local_only)
            found = sorted(Path(folder).rglob(pattern))
            if len(found) > 1:  # diffusers' own name first, else the repository must say which
                found = [f for f in found if f.name == "pytorch_lora_weights.safetensors"] or found
            if len(found) != 1:
                listed = ", ".join(f.name for f in found) or "no .safetensors file"
                raise InvalidRequest(
                    f"LoRA {name!r}: the repository has {listed}; name one, as {location}/FILE.safetensors."
                )
            return found[0]

        return load_weights(weights_source(f"LoRA {name!r}", location), offline, download)

    def _file_hash(self, path: Path) -> str:
        """The first 12 hex digits of the file's SHA-256, as AUTOMATIC1111 names a LoRA in `Lora hashes`."""
        stat = path.stat()
        known = (str(path), stat.st_size, stat.st_mtime_ns)
        if known not in self._hashes:
            digest = hashlib.sha256()
            with open(path, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
            self._hashes[known] = digest.hexdigest()[:12]
        return self._hashes[known]

    def _load(self, pipe: Any, file: Path, name: str) -> str:
        """Put the LoRA in `file` into the pipeline's components as the adapter `name`."""
        with quiet_diffusers():  # it warns of every LoRA without text-encoder weights: most of them
            pipe.load_lora_weights(str(file), adapter_name=name)
        return name


@contextmanager
def loras_applied(pipe: Any, denoiser: Any, adapters: list[Adapter]) -> Iterator[None]:
    """The run's LoRAs switched on in the shared components for one call, and every LoRA off after it
    (also before it, when this run has none: an earlier run's may still sit in the `denoiser`, the
    pipeline's UNet or transformer)."""
    holds_any = bool(getattr(denoiser, "peft_config", None))
    if adapters:
        pipe.enable_lora()
        pipe.set_adapters([a.name for a in adapters], adapter_weights=[a.weight for a in adapters])
    elif holds_any:
        pipe.disable_lora()
    try:
        yield
    finally:
        if adapters or holds_any:
            pipe.disable_lora()


def recorded(adapters: list[Adapter]) -> dict[str, Any]:
    """The parameters' extras: the LoRAs as chosen, and AUTOMATIC1111's `Lora hashes`."""
    if not adapters:
        return {}
    hashes = ", ".join(f"{Path(a.choice.name).stem}: {a.file_hash}" for a in adapters)
    return {"loras": [str(a.choice) for a in adapters], "lora_hashes": hashes}


@contextmanager
def quiet_diffusers() -> Iterator[None]:
    logger = logging.getLogger("diffusers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _take_out(pipe: Any, name: str) -> None:
    try:
        pipe.delete_adapters(name)
    except Exception:  # the base model it was in is gone too
        log.debug("LoRA %s was already gone", name)
