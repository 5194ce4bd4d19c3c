import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from studio.core.metadata import GenerationParameters, read_parameters, save_png
from studio.core.peer_metadata import parse_parameters_text


def _parameters(**changes) -> GenerationParameters:
    values = dict(
        task="txt2img",
        prompt='a "quoted" fox, in snow: at dusk',
        negative_prompt="blurry, text",
        steps=25,
        sampler="DPM++ 2M Karras",
        guidance_scale=7.5,
        seed=1234567,
        width=768,
        height=512,
        model="sd-1.5",
        user_prompt="a fox",
        styles=("Cinematic", "Watercolor"),
        extras={"strength": 0.35},
    )
    values.update(changes)
    return GenerationParameters(**values)


def test_text_chunk_uses_the_widely_read_layout():
    text = _parameters().to_text().split("\n")
    assert text[0] == 'a "quoted" fox, in snow: at dusk'
    assert text[1] == "Negative prompt: blurry, text"
    assert text[2].startswith(
        "Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 1234567, Size: 768x512, Model: sd-1.5"
    )
    assert 'Styles: "Cinematic, Watercolor"' in text[2] and "Strength: 0.35" in text[2]


def test_png_round_trip_is_exact(tmp_path):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8))
    path = tmp_path / "image.png"
    save_png(image, path, _parameters())
    assert read_parameters(path) == _parameters()
    with Image.open(path) as saved:
        assert np.array_equal(np.asarray(saved), np.asarray(image)), "PNG is lossless"
        parsed = parse_parameters_text(saved.info["parameters"])
    assert parsed["prompt"] == 'a "quoted" fox, in snow: at dusk'
    assert parsed["negative_prompt"] == "blurry, text"
    assert (parsed["steps"], parsed["seed"], parsed["guidance_scale"]) == (25, 1234567, 7.5)
    assert (parsed["width"], parsed["height"], parsed["sampler"]) == (768, 512, "DPM++ 2M Karras")
    assert parsed["Styles"] == "Cinematic, Watercolor"


def test_reads_a_parameters_chunk_written_by_another_studio(tmp_path):
    text = (
        "masterpiece, a castle on a hill,\nsunset\n"
        "Negative prompt: lowres, bad anatomy\n"
        "Steps: 30, Sampler: Euler a, Schedule type: Karras, CFG scale: 6, Seed: 42, Size: 832x1216, "
        'Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Lora hashes: "detail: abc123, style: def456", '
        "Version: v1.10.1"
    )
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    path = tmp_path / "other.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    parsed = read_parameters(path)
    assert parsed["prompt"] == "masterpiece, a castle on a hill,\nsunset"
    assert parsed["negative_prompt"] == "lowres, bad anatomy"
    assert (parsed["steps"], parsed["seed"], parsed["guidance_scale"]) == (30, 42, 6.0)
    assert (parsed["width"], parsed["height"]) == (832, 1216)
    assert parsed["model"] == "sd_xl_base_1.0"
    assert (parsed["generator"], parsed["sampler"], parsed["scheduler"]) == (
        "AUTOMATIC1111",
        "Euler a",
        "Karras",
    )
    assert parsed["settings"]["Lora hashes"] == "detail: abc123, style: def456"
    assert parsed["settings"]["Version"] == "v1.10.1"


def test_prompt_only_text_has_no_settings():
    assert parse_parameters_text("just a prompt") == {"prompt": "just a prompt", "negative_prompt": ""}


def test_image_without_parameters_reads_as_none(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(path)
    assert read_parameters(path) is None


def test_save_png_refuses_to_overwrite(tmp_path):
    path = tmp_path / "x.png"
    save_png(Image.new("RGB", (4, 4)), path, _parameters())
    with pytest.raises(FileExistsError):
        save_png(Image.new("RGB", (4, 4)), path, _parameters())


def test_a_result_no_model_denoised_writes_no_sampling_settings():
    styled = GenerationParameters(
        task="style_transfer",
        prompt="",
        negative_prompt="",
        steps=0,
        sampler="",
        guidance_scale=0,
        seed=None,  # nothing denoised it, and its source had none
        width=320,
        height=240,
        model="",
        extras={
            "mode": "instant",
            "neural_styles": ["Night Swirl", "Amber Oil"],
            "style_weights": [0.7, 0.3],
        },
    )
    text = styled.to_text()
    settings = (
        'Size: 320x240, Mode: instant, Neural styles: "Night Swirl, Amber Oil", Style weights: "0.7, 0.3"'
    )
    assert text == "\n" + settings
    parsed = parse_parameters_text(text)
    assert parsed["Neural styles"] == "Night Swirl, Amber Oil" and "steps" not in parsed


def test_a_prompt_line_that_reads_as_the_negative_prompt_does_not_mislead_other_readers(tmp_path):
    """Readers start the negative prompt at a line beginning "Negative prompt:"; such a line inside the
    prompt is joined to the one before in the shared chunk, and kept exactly in ours."""
    written = _parameters(prompt="a fox\nNegative prompt: none of this\n in snow", negative_prompt="blurry")
    path = tmp_path / "ours.png"
    save_png(Image.new("RGB", (8, 8)), path, written)
    assert read_parameters(path) == written
    with Image.open(path) as saved:
        text = saved.info["parameters"]
    shared_only = tmp_path / "shared.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8)).save(shared_only, pnginfo=info)
    for parsed in (parse_parameters_text(text), read_parameters(shared_only)):  # ours; sd-parsers'
        assert parsed["negative_prompt"] == "blurry"
        assert (
            parsed["prompt"].startswith("a fox Negative prompt: none of this")
            and "in snow" in parsed["prompt"]
        )
