"""The repository, pushed as it is to a Hugging Face Space, describes itself correctly."""

import re

import gradio
import torch
import yaml

from studio.core.settings import PROJECT_ROOT


def front_matter() -> dict:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, flags=re.S)
    assert match, "README.md starts with a YAML front matter block"
    return yaml.safe_load(match.group(1))


def test_front_matter_names_the_app_and_the_gradio_we_test_with(presets):
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert (PROJECT_ROOT / meta["app_file"]).is_file()
    assert isinstance(meta["python_version"], str) and meta["python_version"].startswith("3.")
    assert meta["short_description"] and len(meta["short_description"]) <= 60
    assert meta["suggested_hardware"]
    default_source = presets.models[presets.default_model].source
    assert {preset.source for preset in presets.models.values()} <= set(meta["models"])
    assert meta["preload_from_hub"][0].split()[0] == default_source


def test_requirements_install_torch_once():
    lines = [
        line.strip()
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sum(1 for line in lines if re.match(r"torch\b", line)) == 1
    assert "." in lines, "the project itself, with its dependencies"


def test_cpu_users_are_told_which_models_suit_them():
    import app
    from studio.core.devices import resolve_device

    cpu = resolve_device("cpu")
    assert "SD-Turbo, the default, makes an image in 1–4 steps" in app.cpu_note(cpu, "sd-turbo")
    assert "SD-Turbo (model sd-turbo) makes an image" in app.cpu_note(cpu, "/models/my-sdxl")
    gpu = cpu.__class__(torch.device("cuda"), torch.float16, "sdpa")
    assert app.cpu_note(gpu, "sd-turbo") == "", "nothing to say on a GPU"
