"""The whole studio launched in this process on a free port, serving the tests' tiny random SD model.

Shared by load_bench.py and soak_bench.py: the real app (`app.create_app` + `app.launch_options`, as the
API tests launch it), with a tiny Canny ControlNet and IP-Adapter so diffusion style transfer runs too.
Gradio's upload/cache folder is a fresh temporary folder (GRADIO_TEMP_DIR), so its growth is this studio's.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ["STUDIO_BACKEND"] = "torch"  # no OpenVINO conversion of the tiny model
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class TinyStudio:
    demo: object
    url: str
    outputs: Path
    cache_folder: Path  # Gradio's upload/cache folder (GRADIO_TEMP_DIR)

    def close(self) -> None:
        self.demo.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_tiny_presets(folder: Path) -> tuple[Path, Path]:
    """The tiny SD model and a presets folder with its ControlNet and IP-Adapter, built under `folder`."""
    from tests.tiny_models import build_controlnet, build_ip_adapter, build_sd, write_adapter_presets

    model = build_sd(folder / "tiny-sd")
    adapters = {
        "sd1": (
            build_controlnet(model, folder / "controlnet-canny-sd1"),
            build_ip_adapter(model, folder / "ip-adapter-sd1"),
            "up_blocks.0.attentions.0",  # the tiny UNet's one cross-attention up block
        )
    }
    return model, write_adapter_presets(folder / "presets", adapters)


def launch(work: Path, **settings_values) -> TinyStudio:
    """The studio on a free port, its models, outputs and Gradio cache under `work`; `settings_values`
    override the Settings (e.g. queue_size)."""
    cache_folder = work / "gradio-cache"
    cache_folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(cache_folder)

    import app
    from studio.core.settings import Settings

    model, presets_dir = build_tiny_presets(work / "models")
    port = free_port()
    settings = Settings(
        model=str(model), device="cpu", backend="torch", port=port, outputs=work / "outputs",
        offline=True, presets_dir=presets_dir, **settings_values,
    )  # fmt: skip
    demo = app.create_app(settings)
    demo.launch(**{**app.launch_options(demo), "prevent_thread_lock": True, "quiet": True, "share": False})
    return TinyStudio(demo, f"http://127.0.0.1:{port}/", settings.outputs, cache_folder)


def folder_size(folder: Path) -> tuple[int, int]:
    """(bytes, files) under `folder`."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files), len(files)


def work_folder(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
