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


def test_cpu_users_are_told_whether_the_chosen_model_suits_them(presets, tiny_sd, tmp_path):
    import dataclasses

    import app
    from studio.core.devices import resolve_device

    cpu = resolve_device("cpu")
    note = " ".join(app.cpu_note(cpu, presets, offline=True))
    assert "the chosen model, sd-turbo, makes an image in 1–4 steps" in note
    big = tmp_path / "my-sdxl"
    (big / "unet").mkdir(parents=True)
    (big / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    with open(big / "unet" / "diffusion_pytorch_model.safetensors", "wb") as weights:
        weights.truncate(2 * 2**30)  # 2 GiB, sparse: a large model by its size
    chosen = dataclasses.replace(presets, default_model=str(big))
    note = " ".join(app.cpu_note(cpu, chosen, offline=True))
    assert "the chosen model, my-sdxl, may take minutes" in note and str(tmp_path) not in note
    assert "sd-turbo" not in note, "offline, and sd-turbo is not on this machine: not recommended"
    tiny = dataclasses.replace(presets, default_model=str(tiny_sd))
    note = " ".join(app.cpu_note(cpu, tiny, offline=True))
    assert "the chosen model, tiny-sd, is small" in note and "minutes" not in note
    gpu = cpu.__class__(torch.device("cuda"), torch.float16, "sdpa")
    assert app.cpu_note(gpu, presets, offline=True) == [], "nothing to say on a GPU"


def test_readme_says_how_to_install_the_cpu_build_of_the_same_torch():
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```bash\n(pip install [^\n]+)\n```", text).group(1)
    pins = re.findall(r"torch(?:vision)?==[\d.]+", first)
    cpu = re.search(r"`(pip install [^`]+--index-url https://download\.pytorch\.org/whl/cpu)`", text)
    assert cpu, "the README says how to get the CPU build"
    assert re.findall(r"torch(?:vision)?==[\d.]+", cpu.group(1)) == pins, "the same pinned versions"
    assert text.index(first) < cpu.start() < text.index("## Text to Image"), "right after the commands"


def test_only_the_studios_own_user_is_told_the_servers_folders(presets, tmp_path):
    from types import SimpleNamespace

    import app
    from studio.core.cache import ModelCache
    from studio.core.devices import resolve_device
    from studio.core.settings import Settings

    cache = ModelCache(resolve_device("cpu"), offline=True)
    outputs = tmp_path / "srv" / "outputs"
    local = SimpleNamespace(settings=Settings(outputs=outputs), cache=cache, presets=presets)
    shared = SimpleNamespace(settings=Settings(outputs=outputs, share=True), cache=cache, presets=presets)
    assert str(outputs) in app.header_note(local)
    assert str(tmp_path) not in app.header_note(shared) and "saved on the server" in app.header_note(shared)


def test_importing_the_app_builds_nothing_and_demo_is_built_when_asked_for():
    import subprocess
    import sys

    probe = (
        "import threading, app; "
        "print(threading.active_count(), 'demo' in vars(app), callable(app.create_app))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown == ["1", "False", "True"], "no model-check thread, no app, at import"
