import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from studio.core.devices import resolve_device
from studio.core.errors import InvalidRequest
from studio.core.settings import PROJECT_ROOT, configuration_table, load_settings, options


def test_flags_override_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_MODEL", "sdxl")
    monkeypatch.setenv("STUDIO_PORT", "9000")
    monkeypatch.setenv("STUDIO_OUTPUTS", str(tmp_path / "env-out"))
    from_env = load_settings([])
    assert (from_env.model, from_env.port, from_env.outputs) == ("sdxl", 9000, tmp_path / "env-out")
    flags = load_settings(
        ["--model", "/models/x", "--port", "7000", "--share", "--auth", "ann:pa:ss", "--auth", "bo:b"]
    )
    assert (flags.model, flags.port, flags.share) == ("/models/x", 7000, True)
    assert flags.auth == (("ann", "pa:ss"), ("bo", "b"))


def test_defaults(monkeypatch):
    for name in ("STUDIO_MODEL", "STUDIO_PORT", "STUDIO_HOST", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings([])
    assert (settings.model, settings.host, settings.port, settings.device, settings.dtype) == (
        None,
        "127.0.0.1",
        7860,
        "auto",
        "auto",
    )
    assert settings.outputs == Path("outputs")


def test_auth_needs_user_and_password():
    with pytest.raises(InvalidRequest, match="user:password"):
        load_settings(["--auth", "nobody"])


def test_help_lists_every_flag():
    result = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    for flag in ("--model", "--device", "--dtype", "--host", "--port", "--share", "--auth", "--outputs"):
        assert flag in result.stdout


def test_cpu_computes_in_float32_with_sdpa():
    config = resolve_device("cpu")
    assert (config.device.type, config.dtype, config.attention) == ("cpu", torch.float32, "sdpa")
    assert resolve_device("cpu", "bfloat16").dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_gpu_is_a_clear_error():
    with pytest.raises(InvalidRequest, match="no CUDA GPU"):
        resolve_device("cuda")


def test_unknown_device_and_dtype():
    with pytest.raises(InvalidRequest, match="Unknown device"):
        resolve_device("tpu9")
    with pytest.raises(InvalidRequest, match="Unknown dtype"):
        resolve_device("cpu", "float8")


def test_memory_budgets_from_flags_and_environment(monkeypatch):
    from studio.core.memory import GIB, default_budget

    monkeypatch.setenv("STUDIO_RAM_BUDGET", "12")
    settings = load_settings(["--gpu-budget", "8"])
    assert (settings.gpu_budget_gib, settings.ram_budget_gib) == (8.0, 12.0)
    budget = default_budget(torch.device("cpu"), settings.gpu_budget_gib, settings.ram_budget_gib)
    assert (budget.accelerator_bytes, budget.ram_bytes) == (8 * GIB, 12 * GIB)
    unset = default_budget(torch.device("cpu"))
    assert unset.accelerator_bytes is None and 0 < unset.ram_bytes < 64 * GIB * 4
    monkeypatch.setenv("STUDIO_GPU_BUDGET", "lots")
    with pytest.raises(InvalidRequest, match="STUDIO_GPU_BUDGET must be a number, got 'lots'"):
        load_settings([])


def test_offload_mode_from_flag_and_environment(monkeypatch):
    assert load_settings([]).offload == "auto"
    monkeypatch.setenv("STUDIO_OFFLOAD", "sequential")
    assert load_settings([]).offload == "sequential"
    assert load_settings(["--offload", "model"]).offload == "model"
    monkeypatch.setenv("STUDIO_OFFLOAD", "sometimes")
    with pytest.raises(InvalidRequest, match="STUDIO_OFFLOAD must be one of auto, none, model, sequential"):
        load_settings([])


def test_server_settings_for_a_reverse_proxy_and_the_queue(monkeypatch):
    monkeypatch.setenv("STUDIO_QUEUE_SIZE", "12")
    settings = load_settings(["--root-path", "/studio"])
    assert (settings.root_path, settings.queue_size) == ("/studio", 12)
    import app

    studio = SimpleNamespace(settings=settings)  # what launch_options reads; the routes are only declared
    assert app.launch_options(SimpleNamespace(studio=studio))["root_path"] == "/studio"


def test_style_codes_live_in_the_outputs_folder_unless_given_a_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("STUDIO_STYLE_CODES", raising=False)
    assert load_settings(["--outputs", str(tmp_path)]).styles_folder == tmp_path / "styles"
    monkeypatch.setenv("STUDIO_STYLE_CODES", str(tmp_path / "env-codes"))
    assert load_settings([]).styles_folder == tmp_path / "env-codes"
    assert load_settings(["--style-codes", str(tmp_path / "codes")]).styles_folder == tmp_path / "codes"


def test_readme_lists_every_setting_as_declared():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert configuration_table() in readme, "run python -m studio.core.settings and paste its table"
    assert len(options()) == configuration_table().count("\n| `--"), "a row for each setting"


def test_every_setting_reads_its_variable_and_a_bad_value_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_AUTH", "ann:x,bo:y:z")
    monkeypatch.setenv("STUDIO_OPENVINO_CACHE", str(tmp_path / "ir"))
    monkeypatch.setenv("STUDIO_MCP", "yes")
    settings = load_settings([])
    assert settings.auth == (("ann", "x"), ("bo", "y:z")) and settings.mcp
    assert settings.openvino_cache == tmp_path / "ir"
    assert load_settings(["--auth", "cy:w"]).auth == (("cy", "w"),), "flags win over the variable"
    monkeypatch.setenv("STUDIO_MAX_IMAGES", "four")
    with pytest.raises(InvalidRequest, match="STUDIO_MAX_IMAGES must be a whole number, got 'four'"):
        load_settings([])


def test_reading_a_model_from_the_hub_prints_no_warning_of_diffusers_own_making():
    """diffusers hands huggingface_hub a deprecated argument on every config read: the console of every
    start said so, and nobody running the studio can do anything about it. (A process of its own: pytest
    resets warning filters set while it collects.)"""
    read = (
        "import contextlib, studio.core.models\n"
        "from diffusers import AutoencoderTiny\n"
        "with contextlib.suppress(Exception):\n"
        "    AutoencoderTiny.load_config('madebyollin/taesd', local_files_only=True)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", read], cwd=PROJECT_ROOT, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "local_dir_use_symlinks" not in done.stderr
