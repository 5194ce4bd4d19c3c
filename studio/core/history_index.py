"""The history's index: what search and filters need, in SQLite beside the outputs.

The PNGs stay the truth. The index is rebuilt from their own metadata when it is missing or damaged, and
brought up to date (`sync`) with files written by another process or copied in: new files are read, gone
ones forgotten, changed ones read again. Every query is one SQL statement on an indexed table, so a page
of 20,000 results answers in milliseconds. A connection is opened per call: SQLite serialises writers
across threads and processes (the studio and the command line may share one outputs folder).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from studio.core.metadata import GenerationParameters, read_parameters

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    path TEXT PRIMARY KEY,       -- relative to the outputs folder, '/'-separated; where it lives untrashed
    folder TEXT NOT NULL,        -- its folder, relative
    number INTEGER,              -- the NNNNN of its name
    day TEXT NOT NULL,           -- YYYY-MM-DD: its folder's date, else its file's
    saved REAL NOT NULL,         -- the file's modification time
    bytes INTEGER NOT NULL,
    task TEXT, model TEXT, prompt TEXT, seed INTEGER, width INTEGER, height INTEGER,
    search TEXT NOT NULL,        -- lower-cased prompt (styled and as typed) and negative prompt
    owner TEXT,                  -- who made it ("user:bo", "session:…"); NULL: the local user or a file
    trashed INTEGER NOT NULL DEFAULT 0,
    parameters TEXT              -- JSON: ours in full, or another studio's fields
);
CREATE INDEX IF NOT EXISTS newest ON results (trashed, saved DESC, path DESC);
CREATE INDEX IF NOT EXISTS numbering ON results (folder, number);
"""
ENTRY_COLUMNS = "path, day, task, model, prompt, seed, width, height, trashed, parameters"
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NUMBERED = re.compile(r"^(\d{5,})-")
TRASH = ".trash"
HIDDEN = (".", "_")  # the index, thumbnails, trash and files being written start with a dot


@dataclass(frozen=True)
class Viewer:
    """Who is looking: `owner` sees what they made; `sees_all`, everything (the local user)."""

    owner: str | None = None
    sees_all: bool = True


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the outputs folder
    day: str
    task: str
    model: str
    prompt: str
    seed: int | None
    width: int | None
    height: int | None
    trashed: bool
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Query:
    text: str = ""
    task: str = ""
    model: str = ""
    day: str = ""
    size: str = ""  # "512x512"
    trashed: bool = False
    page: int = 1
    per_page: int = 48


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    total: int
    page: int
    pages: int


class HistoryIndex:
    def __init__(self, root: Path, name: str = ".history.sqlite") -> None:
        self.root = Path(root)
        self.path = self.root / name
        self._ready = False

    # -- the database ---------------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self._open()
        with closing(sqlite3.connect(self.path, timeout=30)) as connection, connection:
            yield connection

    def _open(self) -> None:
        """Create the index if missing; set a damaged one aside (it is only ever a copy of the PNGs')."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as connection, connection:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(SCHEMA)
                connection.execute("SELECT count(*) FROM results").fetchone()
        except sqlite3.DatabaseError as error:
            damaged = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            log.warning(
                "the history index was damaged (%s); set aside as %s and rebuilt", error, damaged.name
            )
            self.path.replace(damaged)
            for leftover in (self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")):
                leftover.unlink(missing_ok=True)
            with closing(sqlite3.connect(self.path, timeout=30)) as connection, connection:
                connection.executescript(SCHEMA)
        self._ready = True

    # -- keeping it up to date ------------------------------------------------------------------------

    def add(self, path: Path, parameters: GenerationParameters | dict | None, owner: str | None) -> None:
        row = self._row(path, parameters, owner, trashed=False)
        with self._connect() as connection:
            connection.execute(f"INSERT OR REPLACE INTO results VALUES ({', '.join('?' * len(row))})", row)

    def max_number(self, folder: Path) -> int:
        with self._connect() as connection:
            found = connection.execute(
                "SELECT max(number) FROM results WHERE folder = ?", (self._relative(folder),)
            ).fetchone()
        return found[0] or 0

    def set_trashed(self, path: str, trashed: bool) -> None:
        with self._connect() as connection:
            connection.execute("UPDATE results SET trashed = ? WHERE path = ?", (int(trashed), path))

    def forget(self, paths: list[str]) -> None:
        with self._connect() as connection:
            connection.executemany("DELETE FROM results WHERE path = ?", [(p,) for p in paths])

    def sync(self, progress: Callable[[int, int], None] = lambda done, total: None) -> dict[str, int]:
        """Bring the index up to date with the files: returns how many were added, changed and removed."""
        on_disk = dict(self._files())
        with self._connect() as connection:
            known = {
                path: (saved, size, bool(trashed), owner)
                for path, saved, size, trashed, owner in connection.execute(
                    "SELECT path, saved, bytes, trashed, owner FROM results"
                )
            }
        gone = [path for path in known if path not in on_disk]
        to_read = [
            (path, stat)
            for path, stat in on_disk.items()
            if path not in known or known[path][:3] != (stat[0], stat[1], stat[2])
        ]
        rows = []
        for done, (path, (_, _, trashed)) in enumerate(to_read, start=1):
            file = self.root / (f"{TRASH}/{path}" if trashed else path)
            try:
                parameters = read_parameters(file)
            except (OSError, SyntaxError, ValueError):  # a damaged file is listed, without parameters
                parameters = None
            owner = known[path][3] if path in known else _owner_from_path(path)
            rows.append(self._row(file, parameters, owner, trashed=trashed, relative=path))
            if done % 200 == 0 or done == len(to_read):
                progress(done, len(to_read))
        with self._connect() as connection:
            connection.executemany("DELETE FROM results WHERE path = ?", [(p,) for p in gone])
            connection.executemany(f"INSERT OR REPLACE INTO results VALUES ({', '.join('?' * 16)})", rows)
        added = sum(1 for path, _ in to_read if path not in known)
        return {"added": added, "changed": len(to_read) - added, "removed": len(gone)}

    def _files(self) -> Iterator[tuple[str, tuple[float, int, bool]]]:
        """Every result file: its untrashed relative path and (mtime, bytes, trashed)."""
        for base, trashed in ((self.root, False), (self.root / TRASH, True)):
            if not base.is_dir():
                continue
            for file in _walk_pngs(base):
                stat = file.stat()
                yield PurePosixPath(file.relative_to(base)).as_posix(), (stat.st_mtime, stat.st_size, trashed)

    def _row(
        self,
        file: Path,
        parameters: GenerationParameters | dict | None,
        owner: str | None,
        *,
        trashed: bool,
        relative: str | None = None,
    ) -> tuple:
        relative = relative or self._relative(file)
        stat = file.stat()
        folder = PurePosixPath(relative).parent.as_posix()
        numbered = NUMBERED.match(PurePosixPath(relative).name)
        folder_day = PurePosixPath(relative).parent.name
        day = (
            folder_day if DAY.match(folder_day) else time.strftime("%Y-%m-%d", time.localtime(stat.st_mtime))
        )
        if isinstance(parameters, GenerationParameters):
            fields = parameters.to_dict()
            prompt = parameters.typed_prompt or parameters.prompt
            searched = " ".join((parameters.prompt, parameters.user_prompt, parameters.negative_prompt))
            task, model = parameters.task, parameters.model
        else:
            fields = dict(parameters or {})
            prompt = str(fields.get("prompt", ""))
            searched = " ".join((prompt, str(fields.get("negative_prompt", ""))))
            task, model = ("other" if fields else "none"), str(fields.get("model") or "")
        return (
            relative, folder, int(numbered.group(1)) if numbered else None, day, stat.st_mtime, stat.st_size,
            task, model, prompt, fields.get("seed") if isinstance(fields.get("seed"), int) else None,
            fields.get("width"), fields.get("height"), searched.lower(), owner, int(trashed),
            json.dumps(fields, ensure_ascii=False, default=str),
        )  # fmt: skip

    def _relative(self, path: Path) -> str:
        return PurePosixPath(Path(path).resolve().relative_to(self.root.resolve())).as_posix()

    # -- finding things again -------------------------------------------------------------------------

    def search(self, query: Query, viewer: Viewer) -> Page:
        where, values = self._where(query, viewer)
        with self._connect() as connection:
            total = connection.execute(f"SELECT count(*) FROM results WHERE {where}", values).fetchone()[0]
            pages = max(1, -(-total // query.per_page))
            page = min(max(1, query.page), pages)
            rows = connection.execute(
                f"SELECT {ENTRY_COLUMNS} FROM results WHERE {where} "
                "ORDER BY saved DESC, path DESC LIMIT ? OFFSET ?",
                [*values, query.per_page, (page - 1) * query.per_page],
            ).fetchall()
        return Page([_entry(row) for row in rows], total, page, pages)

    def entry(self, path: str, viewer: Viewer) -> Entry | None:
        where, values = self._where(Query(trashed=False), viewer, any_trash_state=True)
        with self._connect() as connection:
            row = connection.execute(
                f"SELECT {ENTRY_COLUMNS} FROM results WHERE path = ? AND {where}",
                [path, *values],
            ).fetchone()
        return _entry(row) if row else None

    def choices(self, viewer: Viewer) -> dict[str, list[str]]:
        """What the filters offer: the tasks, models, days and sizes among what `viewer` may see."""
        where, values = self._where(Query(), viewer, any_trash_state=True)
        with self._connect() as connection:

            def distinct(column: str) -> list[str]:
                rows = connection.execute(f"SELECT DISTINCT {column} FROM results WHERE {where}", values)
                return sorted((str(value) for (value,) in rows if value), reverse=column == "day")

            sizes = connection.execute(
                f"SELECT DISTINCT width, height FROM results WHERE {where} AND width IS NOT NULL", values
            ).fetchall()
            return {
                "task": distinct("task"),
                "model": distinct("model"),
                "day": distinct("day"),
                "size": sorted({f"{w}x{h}" for w, h in sizes}, key=lambda s: [int(n) for n in s.split("x")]),
            }

    def trashed_paths(self, viewer: Viewer) -> list[str]:
        where, values = self._where(Query(trashed=True), viewer)
        with self._connect() as connection:
            return [path for (path,) in connection.execute(f"SELECT path FROM results WHERE {where}", values)]

    @staticmethod
    def _where(query: Query, viewer: Viewer, *, any_trash_state: bool = False) -> tuple[str, list]:
        clauses, values = ([], []) if any_trash_state else (["trashed = ?"], [int(query.trashed)])
        if not viewer.sees_all:
            clauses.append("owner = ?")
            values.append(viewer.owner)
        if query.text.strip():
            for word in query.text.lower().split():  # every word, anywhere in the prompts
                clauses.append("search LIKE ? ESCAPE '\\'")
                values.append("%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        for column in ("task", "model", "day"):
            if getattr(query, column):
                clauses.append(f"{column} = ?")
                values.append(getattr(query, column))
        size = re.fullmatch(r"(\d+)x(\d+)", query.size or "")
        if size:
            clauses.append("width = ? AND height = ?")
            values.extend(int(side) for side in size.groups())
        return " AND ".join(clauses) or "1", values


def _entry(row: tuple) -> Entry:
    path, day, task, model, prompt, seed, width, height, trashed, parameters = row
    return Entry(path, day, task or "", model or "", prompt or "", seed, width, height, bool(trashed),
                 json.loads(parameters or "{}"))  # fmt: skip


def _walk_pngs(base: Path) -> Iterator[Path]:
    """PNGs under `base`, skipping hidden folders and files (the index, thumbnails, trash, partial saves)."""
    for entry in sorted(base.iterdir()) if base.is_dir() else ():
        if entry.name.startswith(HIDDEN):
            continue
        if entry.is_dir():
            yield from _walk_pngs(entry)
        elif entry.suffix.lower() == ".png":
            yield entry


def _owner_from_path(path: str) -> str | None:
    """A signed-in user's results live under users/<name>/, so who made them survives a rebuild."""
    parts = PurePosixPath(path).parts
    return f"user:{parts[1]}" if len(parts) > 2 and parts[0] == "users" else None
