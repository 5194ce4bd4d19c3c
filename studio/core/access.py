"""What visitors may ask of a studio others can reach: which models by path, and how many runs a minute.

On this machine alone the user may name any model folder or file (it is their machine). Once anyone else
can reach the studio (a share link, logins, another address), a request's model and LoRA references are
only presets, names in the LoRA folder, or files inside the configured model folders: never a server
path elsewhere, and the answer for a refused path is the same whether or not it exists, so nobody can
probe the server's files. `--allow-any-model-path` restores the open behaviour for a trusted setup.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.errors import InvalidRequest


@dataclass(frozen=True)
class Reference:
    """A model a request names: what it is ("Model", "LoRA"), as typed, and whether a bare name is looked
    up in a folder of the studio's own (a LoRA's is; a model's bare name must be a preset)."""

    what: str
    value: str
    bare_name_in_folder: bool = False


def is_bare_name(value: str) -> bool:
    return bool(value) and not any(sep in value for sep in "/\\") and not value.startswith((".", "~"))


def inside(path: Path, folders: Iterable[Path]) -> bool:
    """Whether `path`, with every `..` and link resolved, lies inside one of `folders`."""
    resolved = path.expanduser().resolve()
    return any(resolved.is_relative_to(folder.expanduser().resolve()) for folder in folders)


@dataclass(frozen=True)
class ModelAccess:
    names: Collection[str] = ()  # presets and the studio's own --model: always allowed
    folders: tuple[Path, ...] = ()  # where files may be named by path
    any_path: bool = True

    def allows(self, reference: Reference) -> bool:
        value = reference.value.strip()
        if self.any_path or not value or value in self.names:
            return True
        if reference.bare_name_in_folder and is_bare_name(value):
            return True
        return inside(Path(value), self.folders)

    def check(self, references: Iterable[Reference]) -> None:
        for reference in references:
            if not self.allows(reference):
                raise InvalidRequest(
                    f"{reference.what} {reference.value.strip()[:200]!r} is not one this studio offers: "
                    "choose one of its presets, or a file in its model folders."
                )


@dataclass
class RateLimit:
    """At most `per_minute` runs for each visitor in any sliding minute (0: no limit)."""

    per_minute: int = 0
    clock: Callable[[], float] = time.monotonic
    _runs: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_needed(self, visitor: str) -> float:
        """0 when `visitor` may run now (and the run is counted), else the seconds until they may."""
        if self.per_minute <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            runs = self._runs.setdefault(visitor, deque())
            while runs and now - runs[0] >= 60:
                runs.popleft()
            if len(runs) >= self.per_minute:
                return 60 - (now - runs[0])
            runs.append(now)
            if len(self._runs) > 10_000:  # forget visitors idle for a minute, so the table stays small
                self._runs = {key: times for key, times in self._runs.items() if now - times[-1] < 60}
            return 0.0

    def check(self, visitor: str) -> None:
        wait = self.wait_needed(visitor)
        if wait:
            raise InvalidRequest(
                f"This studio takes at most {self.per_minute} runs a minute from each visitor: try again "
                f"in {max(1, round(wait))} s."
            )
