"""Every result is saved to the outputs folder as a PNG with its parameters, indexed to be found again.

- Files go to `<outputs>/<YYYY-MM-DD>/<NNNNN>-<task>-<seed>.png`, or `<NNNNN>-<task>.png` for a result
  that has no seed (straight into `<outputs>` when not `dated`, as the command line does); a signed-in
  user's under `<outputs>/users/<name>/`, so who made them survives an index rebuild.
- The next number comes from the index (or the last one this process used), never from listing the folder.
  A file is written under a hidden temporary name and then linked to its own, which fails if that name
  exists: a save never replaces a file, two processes sharing a folder never collide, and a save killed
  halfway leaves no truncated PNG under a result's name.
- A small WebP thumbnail goes to `<outputs>/.thumbs/`, for the History tab's pages.
- Delete moves a file to `<outputs>/.trash/` (restorable); only emptying the trash destroys files.
- A run whose visitor closed the page stops at its next step; it is noted, one JSON line each, in
  `<outputs>/.stopped-runs.jsonl`, for the History tab to say what was not made.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from studio.core.errors import ResultNotSaved
from studio.core.history_index import TRASH, HistoryIndex, Viewer
from studio.core.metadata import GenerationParameters, save_png

log = logging.getLogger(__name__)

THUMBNAILS = ".thumbs"
THUMBNAIL_SIDE = 256
STOPPED_RUNS = ".stopped-runs.jsonl"
STOPPED_RUNS_KEPT = 500  # notes kept once the file holds twice as many: it is read whole on each listing
_NUMBERED = re.compile(r"^(\d{5,})-")
_PATH_SAFE = re.compile(r"[^\w.-]+")


@dataclass(frozen=True)
class StoppedRun:
    """A run that stopped, or never started, because its visitor closed the page."""

    task: str
    prompt: str
    made: int
    total: int
    owner: str | None = None
    when: str = ""  # ISO local time, to the second, set when noted


class History:
    def __init__(self, outputs: Path, *, dated: bool = True, indexed: bool = True) -> None:
        """`indexed=False`: plain files only, no index or thumbnails (the command line, writing into a
        folder of the user's; the studio's next sync lists them if the folder is its outputs)."""
        self.outputs = Path(outputs)
        self.dated = dated
        self.index = HistoryIndex(self.outputs) if indexed else None
        self._lock = threading.Lock()
        self._last_number: dict[Path, int] = {}

    # -- saving ---------------------------------------------------------------------------------------

    def folder_for(self, owner: str | None) -> Path:
        folder = self.outputs
        if owner and owner.startswith("user:"):
            folder = folder / "users" / (_PATH_SAFE.sub("_", owner.removeprefix("user:")).strip("._") or "_")
        return folder / dt.date.today().isoformat() if self.dated else folder

    def save(
        self,
        image: Image.Image,
        parameters: GenerationParameters,
        owner: str | None = None,
        png_chunks: Mapping[str, str] | None = None,
    ) -> Path:
        """Where `image` was saved (with `png_chunks` beside its parameters: a style it carries);
        `ResultNotSaved` when the outputs folder cannot take it (full, read-only, gone), saying why in
        words that name no server folder."""
        folder = self.folder_for(owner)
        seed = "" if parameters.seed is None else f"-{parameters.seed}"
        with self._lock:
            partial = folder / f".{os.getpid()}-{threading.get_ident()}.partial.png"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                number = self._next_number(folder)
                save_png(image, partial, parameters, exclusive=False, extra_chunks=png_chunks)
                while True:
                    path = folder / f"{number:05d}-{parameters.task}{seed}.png"
                    try:
                        _link_exclusively(partial, path)
                        break
                    except FileExistsError:  # another process saved under it: take the next number
                        number += 1
            except OSError as error:
                reason = error.strerror or type(error).__name__
                raise ResultNotSaved(
                    f"The result could not be saved in the outputs folder ({reason}). It is shown here "
                    "only: download it to keep it."
                ) from error
            finally:
                with contextlib.suppress(OSError):  # a save failed halfway (a full disk) leaves nothing
                    partial.unlink(missing_ok=True)
            self._last_number[folder] = number
        if self.index is None:
            return path
        self._thumbnail(image, path)
        try:
            self.index.add(path, parameters, owner)
        except Exception:  # the PNG is saved, and the next sync lists it: never lose a result to the index
            log.exception("could not index %s", path)
        return path

    def _next_number(self, folder: Path) -> int:
        if folder not in self._last_number:
            try:
                last = self.index.max_number(folder) if self.index else None
            except Exception:  # no usable index: the folder itself says
                log.exception("the history index cannot give the next number; reading the folder")
                last = None
            if last is None:
                numbers = [int(m.group(1)) for p in folder.glob("*.png") if (m := _NUMBERED.match(p.name))]
                last = max(numbers, default=0)
            self._last_number[folder] = last
        return self._last_number[folder] + 1

    # -- runs stopped by a closed page ----------------------------------------------------------------

    def note_stopped(self, run: StoppedRun) -> None:
        """Note `run`, which its visitor left unfinished; a note that cannot be written is only logged."""
        line = json.dumps(asdict(run) | {"when": dt.datetime.now().isoformat(timespec="seconds")})
        try:
            self.outputs.mkdir(parents=True, exist_ok=True)
            with self._lock:
                with open(self.outputs / STOPPED_RUNS, "a", encoding="utf-8") as notes:
                    notes.write(f"\n{line}\n")  # a line cut short (a full disk) runs into no other
                self._trim_stopped_runs()
        except OSError:
            log.exception("could not note a stopped run")

    def _trim_stopped_runs(self) -> None:
        """Past twice `STOPPED_RUNS_KEPT` notes, keep the newest `STOPPED_RUNS_KEPT` (replaced whole)."""
        path = self.outputs / STOPPED_RUNS
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(lines) <= 2 * STOPPED_RUNS_KEPT:
            return
        partial = path.with_suffix(".partial")
        partial.write_text("\n".join(lines[-STOPPED_RUNS_KEPT:]) + "\n", encoding="utf-8")
        partial.replace(path)

    def stopped_runs(self, viewer: Viewer, limit: int = 3) -> list[StoppedRun]:
        """The latest runs `viewer` left unfinished, newest first."""
        try:
            lines = (self.outputs / STOPPED_RUNS).read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        found: list[StoppedRun] = []
        for line in reversed(lines):
            try:
                run = StoppedRun(**json.loads(line))
            except (ValueError, TypeError):  # empty, or cut short by a full disk: the others still count
                continue
            if viewer.sees_all or run.owner == viewer.owner:
                found.append(run)
                if len(found) == limit:
                    break
        return found

    # -- thumbnails -----------------------------------------------------------------------------------

    def thumbnail_path(self, relative: str) -> Path:
        return self.outputs / THUMBNAILS / f"{relative}.webp"

    def thumbnail(self, relative: str, *, trashed: bool = False) -> Path:
        """The thumbnail of a result, made now if it has none (a file copied in, or an index rebuilt)."""
        thumb = self.thumbnail_path(relative)
        if not thumb.is_file():
            source = self.outputs / (f"{TRASH}/{relative}" if trashed else relative)
            try:
                with Image.open(source) as image:
                    self._thumbnail(image, source, thumb)
            except (OSError, SyntaxError, ValueError):
                pass
        return thumb if thumb.is_file() else source  # a damaged file: the gallery shows it as it can

    def _thumbnail(self, image: Image.Image, path: Path, thumb: Path | None = None) -> None:
        thumb = thumb or self.thumbnail_path(self._relative(path))
        try:
            thumb.parent.mkdir(parents=True, exist_ok=True)
            small = image.convert("RGB")
            small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
            small.save(thumb, format="WEBP", quality=80)
        except OSError:  # a thumbnail is a convenience: the result itself is what matters
            log.exception("could not write the thumbnail of %s", path)

    # -- the trash ------------------------------------------------------------------------------------

    def trash(self, relative: str) -> None:
        """Move a result to the trash, from where `restore` brings it back."""
        self._move(self.outputs / relative, self.outputs / TRASH / relative)
        self.index.set_trashed(relative, True)

    def restore(self, relative: str) -> None:
        self._move(self.outputs / TRASH / relative, self.outputs / relative)
        self.index.set_trashed(relative, False)

    def empty_trash(self, viewer: Viewer) -> int:
        """Destroy the trashed results `viewer` may see; returns how many."""
        paths = self.index.trashed_paths(viewer)
        for relative in paths:
            (self.outputs / TRASH / relative).unlink(missing_ok=True)
            self.thumbnail_path(relative).unlink(missing_ok=True)
        self.index.forget(paths)
        return len(paths)

    def _move(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise FileExistsError(f"{target.name} is there already")
        source.rename(target)

    def _relative(self, path: Path) -> str:
        return PurePosixPath(path.resolve().relative_to(self.outputs.resolve())).as_posix()


def _link_exclusively(source: Path, target: Path) -> None:
    """Give `source` the name `target`, atomically, failing if `target` exists."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: check, then rename (a narrow race, no data loss)
        if target.exists():
            raise FileExistsError(target) from None
        os.replace(source, target)
