"""Midjourney's parameters typed in the prompt, and A1111's LoRA tags: what each task takes from them."""

import pytest

from pipelines.diffusion import stylize_weight
from pipelines.diffusion_style import DiffusionStyleRequest
from pipelines.image_to_image import ImageToImageRequest
from pipelines.parts.prompt_parameters import apply_prompt_parameters, parse_prompt_parameters
from pipelines.text_to_image import TextToImageRequest
from studio.core.errors import InvalidRequest
from studio.core.requests import parse_request


def test_a_midjourney_prompt_sets_the_fields_it_names(presets):
    typed = "stone wall, moss --ar 16:9 --no ivy, people --seed 5 --chaos 30 --tile --s 250 <lora:detail:0.8>"
    values, notes = apply_prompt_parameters(
        {"prompt": typed, "negative_prompt": "blurry"}, TextToImageRequest, presets
    )
    assert notes == []
    assert values == {
        "prompt": "stone wall, moss",
        "negative_prompt": "blurry, ivy, people",
        "aspect_ratio": "16:9",
        "seed": 5,
        "chaos": 30,
        "tile": True,
        "stylize": 250,
        "loras": "detail:0.8",
    }
    request = parse_request(TextToImageRequest, values)
    assert (request.aspect_ratio, request.seed, request.loras) == ("16:9", 5, ("detail:0.8",))


def test_words_after_a_flag_value_stay_in_the_prompt_and_a_prompt_without_flags_is_untouched(presets):
    values, _ = apply_prompt_parameters({"prompt": "a fox --seed 3 in the snow"}, TextToImageRequest, presets)
    assert (values["prompt"], values["seed"]) == ("a fox in the snow", 3)
    plain = {"prompt": "a fox -- in\nthe snow, 16:9"}
    assert apply_prompt_parameters(plain, TextToImageRequest, presets) == (plain, [])


def test_what_a_task_cannot_honour_is_named_and_recorded_never_dropped(presets):
    values, notes = apply_prompt_parameters(
        {"prompt": "a fox --ar 16:9 --weird 3 --iw 2"}, TextToImageRequest, presets
    )
    assert values["prompt"] == "a fox"
    assert notes == [
        "--weird 3 is not something this studio does: it was left out",
        "--iw 2 does nothing here (there is no image prompt): it was left out",
    ]
    assert values["ignored_parameters"] == tuple(notes)
    # Image to Image keeps the input image's shape.
    values, notes = apply_prompt_parameters({"prompt": "oil --ar 16:9"}, ImageToImageRequest, presets)
    assert "aspect_ratio" not in values
    assert notes == ["--ar 16:9 does nothing here (an input image keeps its own shape): it was left out"]


def test_any_aspect_ratio_in_range_is_taken_as_typed(presets):
    values, notes = apply_prompt_parameters({"prompt": "a fox --ar 17:9"}, TextToImageRequest, presets)
    assert (values["aspect_ratio"], notes) == ("17:9", [])
    values, _ = apply_prompt_parameters({"prompt": "a fox --ar 2.39:1"}, TextToImageRequest, presets)
    assert values["aspect_ratio"] == "2.39:1"
    with pytest.raises(InvalidRequest, match=r"^Aspect ratio 5:1 is too extreme: give one from 1:4 to 4:1"):
        apply_prompt_parameters({"prompt": "a fox --ar 5:1"}, TextToImageRequest, presets)
    with pytest.raises(InvalidRequest, match="--ar 'wide': give it as width:height"):
        apply_prompt_parameters({"prompt": "a fox --ar wide"}, TextToImageRequest, presets)


def test_image_weight_sets_each_tasks_image_prompt_weight(presets):
    more, _ = apply_prompt_parameters({"prompt": "oil --iw 2"}, ImageToImageRequest, presets)
    less, _ = apply_prompt_parameters({"prompt": "oil --iw 0.5"}, ImageToImageRequest, presets)
    assert more["strength"] < less["strength"]  # more weight on the image: less change
    styled, _ = apply_prompt_parameters({"prompt": "oil --iw 1.5"}, DiffusionStyleRequest, presets)
    assert styled["style_strength"] == pytest.approx(1.2)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("a fox --stylize much", "--stylize 'much': give a whole number from 0 to 1000"),
        ("a fox --seed abc", "--seed 'abc': give a whole number, e.g. --seed 42"),
        ("a fox --no", "--no '': give what to keep out, e.g. --no trees, people"),
        ("a fox --iw 9", "--iw '9': give a number from 0 to 3"),
    ],
)
def test_a_value_that_does_not_read_says_how_to_write_it(presets, typed, message):
    with pytest.raises(InvalidRequest) as error:
        apply_prompt_parameters({"prompt": typed}, ImageToImageRequest, presets)
    assert str(error.value) == message


def test_out_of_range_values_are_refused_by_the_request_with_the_fields_name(presets):
    values, _ = apply_prompt_parameters({"prompt": "a fox --chaos 150"}, TextToImageRequest, presets)
    with pytest.raises(InvalidRequest, match=r"Variety \(chaos\).*100"):
        parse_request(TextToImageRequest, values)


def test_the_page_moves_only_what_its_controls_hold_and_leaves_the_rest_for_the_run(presets):
    typed = {"prompt": "oil --ar 16:9 --seed 4 --iw 2 <lora:ink>", "seed": -1, "loras": "paper:0.5"}
    moved, notes = apply_prompt_parameters(
        typed, ImageToImageRequest, presets, keep_unhonoured=True, settable={"prompt", "seed", "loras"}
    )
    assert (moved["seed"], moved["loras"], notes) == (4, "paper:0.5, ink:1", [])
    assert moved["prompt"] == "oil --ar 16:9 --iw 2"  # the run then names --ar and applies --iw
    values, notes = apply_prompt_parameters({**moved, "strength": 0.5}, ImageToImageRequest, presets)
    assert values["strength"] == pytest.approx(0.2)
    assert notes == ["--ar 16:9 does nothing here (an input image keeps its own shape): it was left out"]


def test_another_studios_lora_tags_come_out_of_its_prompt_with_its_lines_kept():
    parsed = parse_prompt_parameters(
        "masterpiece, a cat <lora:cute:0.7>, sitting --ar 2:3\n<lora:ink>", tags_only=True
    )
    assert parsed.prompt == "masterpiece, a cat, sitting --ar 2:3"
    assert parsed.loras == ["cute:0.7", "ink:1"]


def test_stylize_weighs_the_style_presets_words_and_100_writes_them_as_they_are(presets):
    plain, _ = presets.apply_styles("a fox", "", ["Cinematic"])
    assert presets.apply_styles("a fox", "", ["Cinematic"], weight=stylize_weight(100))[0] == plain
    strong, _ = presets.apply_styles("a fox", "", ["Cinematic"], weight=stylize_weight(1000))
    weak, _ = presets.apply_styles("a fox", "", ["Cinematic"], weight=stylize_weight(0))
    template = presets.styles["Cinematic"].prompt
    before, after = (part.strip(" ,.") for part in template.split("{prompt}"))
    assert strong.startswith(f"({before}:2)") and strong.endswith(f"({after}:2)")
    assert weak.startswith(f"({before}:0.5)") and "a fox" in weak and "(a fox" not in weak
    assert stylize_weight(0) < stylize_weight(50) < stylize_weight(100) == 1 < stylize_weight(400)


def test_the_upscalers_creative_pass_reads_the_parameters_it_has(presets):
    from pipelines.upscale import UpscaleRequest

    values, notes = apply_prompt_parameters(
        {"prompt": "crisp detail --seed 3 --no blur --steps 9 --tile --ar 16:9"}, UpscaleRequest, presets
    )
    assert (values["prompt"], values["seed"], values["negative_prompt"], values["steps"], values["tile"]) == (
        "crisp detail",
        3,
        "blur",
        9,
        True,
    )
    assert len(notes) == 1 and notes[0].startswith("--ar 16:9 does nothing here")


def test_a_profile_code_or_none_steers_and_words_after_p_stay_in_the_prompt(presets):
    steer = lambda typed: apply_prompt_parameters({"prompt": typed}, TextToImageRequest, presets)[0]  # noqa: E731
    assert steer("a fox --p K3VQ7M2A") == {"prompt": "a fox", "profile": "k3vq7m2a"}
    assert steer("a fox --personalize") == {"prompt": "a fox", "profile": "default"}  # the asker's own
    assert steer("a fox --p in the snow") == {"prompt": "a fox in the snow", "profile": "default"}
