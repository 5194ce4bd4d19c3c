import json
from pathlib import Path

import pytest

from studio.core.errors import InvalidRequest, PresetError
from studio.core.presets import AREA_TOLERANCE, load_presets
from studio.core.settings import DEFAULT_PRESETS_DIR as PRESETS_DIR


def test_shipped_presets_cover_the_required_models_and_styles(presets):
    assert {"sd-turbo", "sd-1.5", "sdxl", "sdxl-turbo"} <= set(presets.models)
    assert presets.default_model == "sd-turbo"
    assert len(presets.styles) >= 24
    for preset in presets.models.values():
        assert preset.sampler in presets.samplers
    assert presets.models["sdxl"].resolution == 1024
    assert presets.models["sd-turbo"].guidance_scale == 0


def test_styles_stack_in_order_and_merge_negatives(presets):
    prompt, negative = presets.apply_styles("a fox", "dull", ["Watercolor", "Cinematic"])
    watercolor, cinematic = presets.styles["Watercolor"], presets.styles["Cinematic"]
    inner = watercolor.prompt.replace("{prompt}", "a fox")
    assert prompt == cinematic.prompt.replace("{prompt}", inner)
    parts = negative.split(", ")
    assert parts[0] == "dull"
    assert len(parts) == len(set(parts)), "shared negative terms appear once"
    assert "photo" in parts and "cartoon" in parts


def test_no_styles_leaves_the_prompt_alone(presets):
    assert presets.apply_styles("a fox", "", []) == ("a fox", "")


def test_unknown_style_is_a_clear_error(presets):
    with pytest.raises(InvalidRequest, match="Unknown style 'Nope'"):
        presets.apply_styles("a fox", "", ["Nope"])


@pytest.mark.parametrize(
    ("name", "resolution", "multiple", "expected"),
    [("1:1", 512, 64, (512, 512)), ("16:9", 1024, 64, (1344, 768)), ("2:3", 1024, 64, (832, 1280))],
)
def test_aspect_ratios_keep_the_pixel_count_near_the_models(presets, name, resolution, multiple, expected):
    width, height = presets.aspect_ratio(name).size_for(resolution, multiple)
    assert (width, height) == expected
    assert width % multiple == 0 and height % multiple == 0
    assert abs(width * height / resolution**2 - 1) < 0.12


@pytest.mark.parametrize(
    ("shape", "expected"), [("2:1", (96, 48)), ("4:1", (128, 32)), ("1:4", (32, 128)), ("3:1", (120, 40))]
)
def test_a_free_ratio_keeps_its_shape_at_the_models_area(presets, shape, expected):
    width, height = presets.aspect_ratio(shape).size_for(64, 8)
    assert (width, height) == expected
    ratio = presets.aspect_ratio(shape)
    assert width / height == ratio.width / ratio.height
    assert abs(width * height / 64**2 - 1) <= AREA_TOLERANCE


def test_an_images_shape_reads_back_as_the_ratio_that_makes_it(presets):
    assert presets.ratio_of(1344, 768) == "16:9"  # sides rounded to multiples of 64
    assert presets.ratio_of(832, 1216) == "2:3"  # SDXL's 2:3
    assert presets.ratio_of(96, 48) == "2:1"
    assert presets.ratio_of(1000, 333) == "21:9"  # no simple ratio: the nearest preset


def _copy_presets(tmp_path: Path) -> Path:
    for file in PRESETS_DIR.glob("*.json"):
        (tmp_path / file.name).write_text(file.read_text())
    return tmp_path


def _edit(folder: Path, name: str, change) -> None:
    document = json.loads((folder / name).read_text())
    change(document)
    (folder / name).write_text(json.dumps(document))


def test_style_without_placeholder_names_file_and_entry(tmp_path):
    folder = _copy_presets(tmp_path)
    _edit(folder, "styles.json", lambda d: d["styles"][3].update(prompt="no placeholder here"))
    with pytest.raises(PresetError) as error:
        load_presets(folder)
    message = str(error.value)
    assert "styles.json" in message and "entry 3" in message and "{prompt}" in message


def test_duplicate_names_are_rejected(tmp_path):
    folder = _copy_presets(tmp_path)
    _edit(folder, "styles.json", lambda d: d["styles"].append(dict(d["styles"][0])))
    with pytest.raises(PresetError, match="used twice"):
        load_presets(folder)


def test_a_models_oref_model_must_be_an_editing_model_here(tmp_path):
    folder = _copy_presets(tmp_path)
    _edit(folder, "models.json", lambda d: d["models"][1].update(oref_model="sdxl"))
    with pytest.raises(PresetError, match=r"'sd-1\.5': oref_model 'sdxl' is no editing model here"):
        load_presets(folder)
    assert load_presets(PRESETS_DIR).models["flux-dev"].oref_model == "flux-kontext"


def test_model_preset_with_unknown_sampler_is_rejected(tmp_path):
    folder = _copy_presets(tmp_path)
    _edit(folder, "models.json", lambda d: d["models"][1].update(sampler="Warp drive"))
    with pytest.raises(PresetError, match="sd-1.5.*Warp drive"):
        load_presets(folder)


def test_sampler_must_name_a_real_scheduler(tmp_path):
    folder = _copy_presets(tmp_path)
    _edit(folder, "samplers.json", lambda d: d["samplers"][0].update(scheduler="NoSuchScheduler"))
    with pytest.raises(PresetError, match="samplers.json.*entry 0.*NoSuchScheduler"):
        load_presets(folder)


def test_out_of_range_and_unknown_fields_are_rejected(tmp_path):
    folder = _copy_presets(tmp_path)
    _edit(folder, "models.json", lambda d: d["models"][0].update(steps=0, colour="red"))
    with pytest.raises(PresetError) as error:
        load_presets(folder)
    assert "steps" in str(error.value) and "colour" in str(error.value)


def test_broken_json_names_the_line(tmp_path):
    folder = _copy_presets(tmp_path)
    (folder / "styles.json").write_text('{"styles": [\n  {"name": "x",}\n]}')
    with pytest.raises(PresetError, match=r"styles.json: not valid JSON .* line 2"):
        load_presets(folder)


def test_missing_file_is_named(tmp_path):
    folder = _copy_presets(tmp_path)
    (folder / "samplers.json").unlink()
    with pytest.raises(PresetError, match="samplers.json: preset file not found"):
        load_presets(folder)


def test_two_controlnets_for_the_same_structure_are_an_error(tmp_path):
    for preset_file in PRESETS_DIR.glob("*.json"):
        (tmp_path / preset_file.name).write_text(preset_file.read_text())
    document = json.loads((PRESETS_DIR / "controlnets.json").read_text())
    document["controlnets"].append({**document["controlnets"][0], "name": "another"})
    (tmp_path / "controlnets.json").write_text(json.dumps(document))
    with pytest.raises(
        PresetError, match=r"controlnets.json: 'another' and 'canny-sd1' are both for sd1/canny"
    ):
        load_presets(tmp_path)


def test_ip_adapter_weights_must_be_safetensors(tmp_path):
    for preset_file in PRESETS_DIR.glob("*.json"):
        (tmp_path / preset_file.name).write_text(preset_file.read_text())
    document = json.loads((PRESETS_DIR / "ip_adapters.json").read_text())
    document["ip_adapters"][0]["weight"] = "models/ip-adapter_sd15.bin"
    (tmp_path / "ip_adapters.json").write_text(json.dumps(document))
    with pytest.raises(PresetError, match=r"ip_adapters.json: entry 0 \('ip-adapter-sd1'\): weight"):
        load_presets(tmp_path)


def test_a_local_model_is_known_by_its_folders_name_and_never_takes_a_presets(presets, tmp_path):
    folder = tmp_path / "sd-turbo"  # the name of a preset already
    named = presets.named_locally(str(folder))
    assert named.default_model == "sd-turbo-2" and named.local_names == {"sd-turbo-2": str(folder)}
    assert presets.named_locally(str(tmp_path / "mine.safetensors")).default_model == "mine"


def test_a_flow_matching_models_preset_must_name_a_sampler_with_a_flow_form(tmp_path):
    folder = _copy_presets(tmp_path)
    flux = lambda d: next(m for m in d["models"] if m["family"] == "flux")  # noqa: E731
    _edit(folder, "models.json", lambda d: flux(d).update(sampler="DPM++ 2M Karras"))
    with pytest.raises(
        PresetError, match=r"'flux-schnell': sampler 'DPM\+\+ 2M Karras' has no flow-matching form"
    ):
        load_presets(folder)


def test_the_families_are_named_by_their_diffusers_pipeline_classes():
    from studio.core.families import family_of

    assert family_of("StableDiffusionPipeline").name == "sd"
    assert family_of("LatentConsistencyModelPipeline").name == "sd"
    assert family_of("StableDiffusionXLInpaintPipeline").name == "sdxl"
    assert family_of("FluxPipeline").name == "flux"
    assert family_of("FluxKontextPipeline").label == "FLUX.1"
    assert family_of("StableDiffusion3Img2ImgPipeline").name == "sd3"
    assert family_of("ZImageInpaintPipeline").label == "Z-Image"
    assert family_of("FluxFillPipeline").name == "flux"  # inpaints only (tests/models/test_families.py)
    with pytest.raises(InvalidRequest, match=r"^FLUX\.1 Canny .* checkpoints are not supported yet\.$"):
        family_of("FluxControlPipeline")  # a FLUX.1 class, whose transformer FluxPipeline cannot run
    for unknown in ("WanPipeline", "Flux2Pipeline"):  # FLUX.2 is not FLUX.1 with a longer name
        with pytest.raises(
            InvalidRequest, match=rf"^{unknown} is not a pipeline of a family this studio runs \("
        ):
            family_of(unknown)
    flux = family_of("FluxPipeline")
    assert flux.pipeline_class("img2img") == "FluxImg2ImgPipeline"
    with pytest.raises(
        InvalidRequest, match=r"^Style transfer by structure \(ControlNet\) is not available for FLUX\.1"
    ):
        flux.pipeline_class("controlnet_img2img")
