"""Where each person's taste profiles are kept: one small JSON file a profile, in a folder of their own.

The folder is named by a digest of the owner ("user:ana" with --auth, a browser's or API session's id
otherwise), so it names nobody and cannot be reached from another owner's: every call takes the owner, and a
code is looked up among that owner's profiles only. One person's profile is never readable by another.
Which profile steers the owner's prompts when they type no `--p` (the Personalize tab's toggle) is kept
beside them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path

from PIL import Image

from studio.core.errors import InvalidRequest, StudioError
from studio.core.taste import (
    DEFAULT_PROFILE,
    MAX_NAME_CHARS,
    SOFT_VOTE,
    Profile,
    Seen,
    created_now,
    is_code,
    new_code,
)

MAX_PROFILES = 20  # per person
LOCAL_OWNER = "local"  # the one user of a studio nobody else can reach, and of the command line
_ACTIVE = "active"  # the file naming the profile that steers the owner's prompts


class Profiles:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def _folder_of(self, owner: str) -> Path:
        return self.folder / hashlib.sha256(owner.encode()).hexdigest()[:32]

    def _file(self, owner: str, code: str) -> Path:
        return self._folder_of(owner) / f"{code}.json"

    def _save(self, owner: str, profile: Profile) -> Profile:
        path = self._file(owner, profile.code)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_text(profile.to_json())
            partial.replace(path)  # whole or not at all
        except OSError as error:
            raise StudioError(f"The profile could not be saved ({error.strerror or 'no space'}).") from error
        return profile

    # -- reading --------------------------------------------------------------------------------------------

    def all(self, owner: str) -> list[Profile]:
        """The owner's profiles, oldest first."""
        folder = self._folder_of(owner)
        found = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            with contextlib.suppress(InvalidRequest, OSError):  # a damaged file is passed over, not fatal
                found.append(Profile.from_json(path.read_bytes()))
        return sorted(found, key=lambda profile: (profile.created, profile.code))

    def get(self, owner: str, code: str) -> Profile:
        """The owner's profile `code`; refused plainly when they have none by that code (another person's
        code is answered the same way: whether it exists is not told)."""
        code = code.strip().lower()
        path = self._file(owner, code) if is_code(code) else None
        if path is None or not path.is_file():
            raise InvalidRequest(
                f"You have no profile {code[:20]!r}: rate pairs on the Personalize tab to make one, or import"
                " yours there."
            )
        return Profile.from_json(path.read_bytes())

    def own(self, owner: str, code: str | None) -> Profile | None:
        """The owner's profile `code`; for none (`--p` alone), the one they turned on, else their newest."""
        if code and code != DEFAULT_PROFILE:
            return self.get(owner, code)
        return self.active(owner) or next(reversed(self.all(owner)), None)

    def exported(self, owner: str, code: str) -> Path:
        """The profile's file, to download."""
        self.get(owner, code)
        return self._file(owner, code.strip().lower())

    def active(self, owner: str) -> Profile | None:
        """The profile steering the owner's prompts that name none, if they turned one on."""
        path = self._folder_of(owner) / _ACTIVE
        with contextlib.suppress(OSError, InvalidRequest):
            return self.get(owner, path.read_text().strip()) if path.is_file() else None
        return None

    # -- changing --------------------------------------------------------------------------------------------

    def create(self, owner: str, name: str = "") -> Profile:
        with self._lock:
            taken = self.all(owner)
            if len(taken) >= MAX_PROFILES:
                raise InvalidRequest(f"You have {MAX_PROFILES} profiles, the most kept: delete one first.")
            codes = {profile.code for profile in taken}
            code = next(code for code in iter(new_code, None) if code not in codes)
            label = name.strip()[:MAX_NAME_CHARS] or f"Profile {len(taken) + 1}"
            return self._save(owner, Profile(code, label, created=created_now()))

    def rate(
        self,
        owner: str,
        code: str,
        better: Image.Image,
        worse: Image.Image,
        *,
        soft: bool = False,
        seen: tuple[Seen | None, Seen | None] = (None, None),
    ) -> Profile:
        """The profile with one more judgement, saved: `better` was liked over `worse` (`soft`: picked in a
        grid over a neighbour, which weighs less), with what an image encoder in the cache `seen` of both."""
        with self._lock:
            profile = self.get(owner, code).rate(better, worse, SOFT_VOTE if soft else 1.0, seen)
            return self._save(owner, profile)

    def imported(self, owner: str, data: bytes) -> Profile:
        """A profile file (an export) added to the owner's; a code they already use gets a new one."""
        profile = Profile.from_json(data)
        with self._lock:
            taken = self.all(owner)
            if len(taken) >= MAX_PROFILES:
                raise InvalidRequest(f"You have {MAX_PROFILES} profiles, the most kept: delete one first.")
            codes = {other.code for other in taken}
            if profile.code in codes:
                profile = Profile(next(c for c in iter(new_code, None) if c not in codes), profile.name,
                                  profile.pairs, profile.created)  # fmt: skip
            return self._save(owner, profile)

    def delete(self, owner: str, code: str) -> None:
        with self._lock:
            path = self.exported(owner, code)
            path.unlink(missing_ok=True)
            active = self._folder_of(owner) / _ACTIVE
            if active.is_file() and active.read_text().strip() == path.stem:
                active.unlink()

    def set_active(self, owner: str, code: str | None) -> None:
        """Steer the owner's prompts with profile `code` (None: with none)."""
        path = self._folder_of(owner) / _ACTIVE
        if code is None:
            path.unlink(missing_ok=True)
            return
        self.get(owner, code)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code.strip().lower())
