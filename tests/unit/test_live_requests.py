"""What a live frame runs: the preset's one-step sibling, its steps, the live size; and what Enhance runs."""

import pytest

from pipelines.live import LiveRequest, enhanced_live_values, live_request, live_side
from studio.core.metadata import GenerationParameters
from studio.core.presets import load_presets
from studio.core.settings import DEFAULT_PRESETS_DIR

PRESETS = load_presets(DEFAULT_PRESETS_DIR)


def live(**values) -> LiveRequest:
    return live_request(LiveRequest(prompt="a fox", **values), PRESETS)


def test_a_full_model_runs_its_one_step_sibling_and_a_distilled_one_runs_itself_at_one_step():
    assert (live(model="sd-1.5").model, live(model="sd-1.5").steps) == ("sdxs", 1)
    assert (live(model="sdxl").model, live(model="sdxl").steps) == ("sdxl-turbo", 1)
    assert (live(model="sd-turbo").model, live(model="sd-turbo").steps) == ("sd-turbo", 1)
    assert live().model == PRESETS.default_model == "sd-turbo"
    assert live(model="sd-1.5", steps=3).steps == 3, "steps asked for are kept"
    assert (live(model="/models/mine").model, live(model="/models/mine").steps) == ("/models/mine", 4)


def test_the_live_size_is_half_the_side_on_a_cpu_for_models_made_for_512_or_more():
    assert live_side(512, "auto", on_cpu=True) == 256
    assert live_side(512, "auto", on_cpu=False) == 512
    assert live_side(1024, "half", on_cpu=False) == 512
    assert live_side(512, "full", on_cpu=True) == 512
    assert live_side(256, "auto", on_cpu=True) == 256


def test_enhance_renders_the_frame_on_the_chosen_model_with_its_own_settings_and_the_full_decoder():
    frame = GenerationParameters(
        task="live", prompt="Cinematic: a fox", negative_prompt="", steps=1, sampler="Euler a",
        guidance_scale=0, seed=77, width=256, height=256, model="sdxs", user_prompt="a fox",
        styles=("Cinematic",), extras={"aspect_ratio": "16:9", "tile": True, "loras": ["ink:0.6"]},
    )  # fmt: skip
    values = enhanced_live_values(frame, PRESETS, "sd-1.5")
    sd15 = PRESETS.models["sd-1.5"]
    assert values["model"] == "sd-1.5" and values["seed"] == 77 and values["prompt"] == "a fox"
    assert (values["steps"], values["guidance_scale"], values["sampler"]) == (
        sd15.steps,
        sd15.guidance_scale,
        sd15.sampler,
    )
    assert values["styles"] == ("Cinematic",) and values["aspect_ratio"] == "16:9"
    assert values["tile"] and values["loras"] == "ink:0.6" and values["decoder"] == "full"


def test_a_preset_may_name_a_few_step_lora_with_the_sampler_steps_and_guidance_it_wants(tmp_path):
    import json
    import shutil

    from studio.core.presets import PresetError

    folder = tmp_path / "presets"
    shutil.copytree(DEFAULT_PRESETS_DIR, folder)
    models = json.loads((folder / "models.json").read_text())
    live = {"lora": "lcm-lora-sdv1-5:0.9", "sampler": "LCM", "steps": 4, "guidance_scale": 1.5}
    models["models"].append(
        {**models["models"][1], "name": "dreamshaper", "label": "DreamShaper", "live": live}
    )
    (folder / "models.json").write_text(json.dumps(models))
    presets = load_presets(folder)

    def dreamshaper(**values) -> LiveRequest:
        return live_request(LiveRequest(prompt="a fox", model="dreamshaper", **values), presets)

    request = dreamshaper(loras=("ink",))
    assert request.model == "dreamshaper" and request.loras == ("ink", "lcm-lora-sdv1-5:0.9")
    assert (request.sampler, request.steps, request.guidance_scale) == ("LCM", 4, 1.5)
    asked = dreamshaper(guidance_scale=2, steps=6)
    assert (asked.guidance_scale, asked.steps) == (2, 6), "what the request sets stays"
    once = live_request(
        LiveRequest(prompt="a fox", model="dreamshaper", loras=("lcm-lora-sdv1-5:0.5",)), presets
    )
    assert once.loras == ("lcm-lora-sdv1-5:0.5",), "a LoRA already asked for is not added twice"

    models["models"][-1]["live"] = {"sampler": "Warp"}
    (folder / "models.json").write_text(json.dumps(models))
    with pytest.raises(PresetError, match="live sampler 'Warp' is not in samplers.json"):
        load_presets(folder)
