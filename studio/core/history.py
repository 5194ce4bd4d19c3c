"""Every result is saved to the outputs folder as a PNG with its parameters, and never overwrites a file.

Files go to `<outputs>/<YYYY-MM-DD>/<NNNNN>-<task>-<seed>.png`, or `<NNNNN>-<task>.png` for a result that has
no seed (straight into `<outputs>` when not `dated`,
as the command line does). The number is one more than the highest in
that folder; the file is created exclusively, so two processes sharing a folder still never collide.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path

from PIL import Image

from studio.core.metadata import GenerationParameters, save_png

_NUMBERED = re.compile(r"^(\d{5,})-")


class History:
    def __init__(self, outputs: Path, *, dated: bool = True) -> None:
        self.outputs = Path(outputs)
        self.dated = dated
        self._lock = threading.Lock()

    def _next_number(self, folder: Path) -> int:
        numbers = [int(m.group(1)) for p in folder.glob("*.png") if (m := _NUMBERED.match(p.name))]
        return max(numbers, default=0) + 1

    def save(self, image: Image.Image, parameters: GenerationParameters) -> Path:
        folder = self.outputs / dt.date.today().isoformat() if self.dated else self.outputs
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            number = self._next_number(folder)
            while True:
                seed = "" if parameters.seed is None else f"-{parameters.seed}"
                path = folder / f"{number:05d}-{parameters.task}{seed}.png"
                try:
                    save_png(image, path, parameters, exclusive=True)
                    return path
                except FileExistsError:
                    number += 1

    def recent(self, limit: int = 50) -> list[Path]:
        """The newest saved results first."""
        files = sorted(self.outputs.glob("*/*.png"), key=lambda p: (p.parent.name, p.name), reverse=True)
        return files[:limit]
