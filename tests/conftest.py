"""Fixtures: tiny models built once per session, core objects, and the app launched on a free port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# No test may reach a model hub: the machines that run them have no network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Studios the tests launch run the machine's default backend, as a user's do (OpenVINO on a CPU), keeping
# the models it converts in this session's own folder instead of the project's models/openvino.
OPENVINO_FOLDER = Path(tempfile.mkdtemp(prefix="studio-openvino-"))
os.environ["STUDIO_OPENVINO_CACHE"] = str(OPENVINO_FOLDER)

from studio.core.cache import ModelCache  # noqa: E402
from studio.core.devices import resolve_device  # noqa: E402
from studio.core.openvino_backend import ConvertedModels  # noqa: E402
from studio.core.presets import Presets, load_presets  # noqa: E402
from studio.core.settings import DEFAULT_PRESETS_DIR, Settings  # noqa: E402
from tests.tiny_models import (  # noqa: E402
    build_captioner,
    build_controlnet,
    build_flux,
    build_flux2_klein,
    build_ip_adapter,
    build_ip_adapter_plus,
    build_qwen_image,
    build_sana_sprint,
    build_sd,
    build_sd3,
    build_sd_inpaint,
    build_sdxl,
    build_tiny_autoencoder,
    build_zimage,
    write_adapter_presets,
    write_captioner_presets,
    write_decoder_presets,
    write_editor_presets,
)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sdxl(tmp_path_factory.mktemp("models") / "tiny-sdxl")


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_flux(tmp_path_factory.mktemp("models") / "tiny-flux")


@pytest.fixture(scope="session")
def tiny_flux_kontext(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_flux(tmp_path_factory.mktemp("models") / "tiny-flux-kontext", seed=1, kontext=True)


@pytest.fixture(scope="session")
def tiny_flux_fill(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_flux(tmp_path_factory.mktemp("models") / "tiny-flux-fill", seed=2, fill=True)


@pytest.fixture(scope="session")
def tiny_flux2_klein(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_flux2_klein(tmp_path_factory.mktemp("models") / "tiny-flux2-klein")


@pytest.fixture(scope="session")
def tiny_sd3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sd3(tmp_path_factory.mktemp("models") / "tiny-sd3")


@pytest.fixture(scope="session")
def tiny_zimage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zimage(tmp_path_factory.mktemp("models") / "tiny-zimage")


@pytest.fixture(scope="session")
def tiny_qwen_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_qwen_image(tmp_path_factory.mktemp("models") / "tiny-qwen-image")


@pytest.fixture(scope="session")
def tiny_qwen_image_edit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_qwen_image(tmp_path_factory.mktemp("models") / "tiny-qwen-image-edit", seed=1, edit=True)


@pytest.fixture(scope="session")
def tiny_sana_sprint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sana_sprint(tmp_path_factory.mktemp("models") / "tiny-sana-sprint")


@pytest.fixture(scope="session")
def tiny_sd_inpaint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sd_inpaint(tmp_path_factory.mktemp("models") / "tiny-sd-inpaint")


@pytest.fixture(scope="session", autouse=True)
def converted_models_removed() -> Iterator[None]:
    yield
    shutil.rmtree(OPENVINO_FOLDER, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def scratch_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """gradio_client downloads each file through a new folder of the temporary directory and leaves the
    folder behind (thousands a run): this session's go in its own folder, removed with it."""
    scratch = tmp_path_factory.mktemp("scratch")
    tempfile.tempdir = str(scratch)
    yield
    tempfile.tempdir = None
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def closed_apps_freed() -> Iterator[None]:
    """Let the studios a module launched be freed once it is done (this fixture is torn down last).

    FastAPI keeps every route's endpoint in module-level caches of 4096 callables, and the endpoints hold
    their Gradio app: without this, every studio a session launched stayed in memory (about 55,000 objects
    each), and late in a run each full garbage collection stopped the process for 2 s or more: long enough
    for Gradio's 3-second check of its own page to fail a launch ("When localhost is not accessible…").
    """
    yield
    from fastapi.dependencies import models

    for cached in (
        models._is_gen_callable_cached,
        models._is_async_gen_callable_cached,
        models._is_coroutine_callable_cached,
    ):
        cached.cache_clear()


@pytest.fixture(scope="session")
def presets() -> Presets:
    return load_presets(DEFAULT_PRESETS_DIR)


@pytest.fixture(scope="session")
def tiny_presets_dir(
    tiny_sd: Path, tiny_sdxl: Path, tiny_flux_kontext: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The shipped presets, with tiny Canny ControlNets and IP-Adapters for the tiny models, an IP-Adapter
    Plus for the tiny SD model, a tiny FLUX.1 Redux, a tiny captioner, and a tiny Kontext as the editing
    model."""
    models = tmp_path_factory.mktemp("adapters")
    adapters = {
        architecture: (
            build_controlnet(base, models / f"controlnet-canny-{architecture}"),
            build_ip_adapter(base, models / f"ip-adapter-{architecture}"),
            "up_blocks.0.attentions.0",  # the tiny UNets' one cross-attention up block
        )
        for architecture, base in (("sd1", tiny_sd), ("sdxl", tiny_sdxl))
    }
    plus = {"sd1": build_ip_adapter_plus(tiny_sd, models / "ip-adapter-plus-sd1")}  # SDXL has none: refused
    presets = write_adapter_presets(tmp_path_factory.mktemp("presets"), adapters, plus)
    write_editor_presets(presets, tiny_flux_kontext)
    return write_captioner_presets(presets, build_captioner(models / "captioner"))


@pytest.fixture(scope="session")
def tiny_presets(tiny_presets_dir: Path) -> Presets:
    return load_presets(tiny_presets_dir)


@pytest.fixture(scope="session")
def fast_decoder_presets_dir(tiny_presets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny presets with a tiny TAESD-like autoencoder as the fast decoder (the shipped presets name
    the hub's TAESD, which is not on this machine)."""
    folder = tmp_path_factory.mktemp("fast-decoder-presets")
    shutil.copytree(tiny_presets_dir, folder, dirs_exist_ok=True)
    autoencoder = build_tiny_autoencoder(tmp_path_factory.mktemp("tiny-taesd"))
    return write_decoder_presets(folder, autoencoder)


@pytest.fixture(scope="session")
def fast_decoder_presets(fast_decoder_presets_dir: Path) -> Presets:
    return load_presets(fast_decoder_presets_dir)


@pytest.fixture(scope="session")
def inpaint_presets(
    tiny_sd: Path, tiny_sd_inpaint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Presets:
    """The shipped presets plus "tiny": the tiny SD model with a dedicated inpainting checkpoint."""
    folder = tmp_path_factory.mktemp("inpaint-presets")
    shutil.copytree(DEFAULT_PRESETS_DIR, folder, dirs_exist_ok=True)
    models = json.loads((folder / "models.json").read_text())
    tiny = {"name": "tiny", "label": "Tiny", "source": str(tiny_sd), "inpaint_source": str(tiny_sd_inpaint)}
    tiny.update(family="sd", resolution=256, steps=3, guidance_scale=5, sampler="Euler")
    models["models"].append(tiny)
    (folder / "models.json").write_text(json.dumps(models))
    return load_presets(folder)


@pytest.fixture
def cache() -> Iterator[ModelCache]:
    """A cache as the studio makes one on this machine: its default backend (OpenVINO on a CPU)."""
    cache = ModelCache.for_machine(resolve_device("cpu"), offline=True, openvino_folder=OPENVINO_FOLDER)
    yield cache
    # Refcounting frees the tiny models; a full collection per test costs ~1.5 s late in a session.
    cache.clear(collect=False)


@pytest.fixture(params=["torch", "openvino"])
def each_backend_cache(request) -> Iterator[ModelCache]:
    """A cache on torch (a GPU's path), then one on OpenVINO (a CPU's default), for what both must keep."""
    converted = ConvertedModels(OPENVINO_FOLDER) if request.param == "openvino" else None
    cache = ModelCache(resolve_device("cpu"), offline=True, backend=request.param, converted=converted)
    yield cache
    cache.clear(collect=False)  # as `cache`


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningApp:
    def __init__(self, demo, url: str, outputs: Path) -> None:
        self.demo = demo
        self.url = url
        self.outputs = outputs


def studio_settings(model: Path, outputs: Path, **overrides) -> Settings:
    """Settings for a studio the tests launch: `model` on the CPU, offline, on a free port."""
    overrides.setdefault("openvino_cache", OPENVINO_FOLDER)
    return Settings(
        model=str(model), device="cpu", port=free_port(), outputs=outputs, offline=True, **overrides
    )


def launch_app(settings: Settings) -> RunningApp:
    import app as studio_app

    demo = studio_app.create_app(settings)
    options = studio_app.launch_options(demo)
    options.update(prevent_thread_lock=True, quiet=True, share=False)
    demo.launch(**options)
    return RunningApp(demo, f"http://127.0.0.1:{settings.port}/", settings.outputs)


@pytest.fixture(scope="module")
def running_app(
    tiny_sd: Path, tiny_presets_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    """The whole studio on a free port, serving the tiny SD model as its default model."""
    outputs = tmp_path_factory.mktemp("outputs")
    running = launch_app(studio_settings(tiny_sd, outputs, presets_dir=tiny_presets_dir))
    yield running
    running.demo.close()
