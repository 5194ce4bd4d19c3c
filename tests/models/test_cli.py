"""The `studio` command line: the same pipelines, PNGs whose parameters read back, clear errors."""

import os
import subprocess

import pytest
import skimage.data
from PIL import Image

from studio.cli import main
from studio.core.metadata import read_parameters
from studio.core.settings import PROJECT_ROOT


def run(capsys, *argv) -> tuple[int, list[str], str]:
    status = main([*argv, "--device", "cpu", "--offline"])
    captured = capsys.readouterr()
    return status, captured.out.split(), captured.err


def test_generate_writes_pngs_whose_parameters_read_back(capsys, tmp_path, tiny_sd):
    status, paths, _ = run(
        capsys, "generate", "a fox", "--style", "Watercolor", "--model", str(tiny_sd), "--n", "2",
        "--seed", "7", "--steps", "2", "--out", str(tmp_path),
    )  # fmt: skip
    assert status == 0 and len(paths) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.rsplit("/", 1)[-1] for p in paths)
    params = [read_parameters(p) for p in paths]
    assert [p.seed for p in params] == [7, 8]
    assert params[0].user_prompt == "a fox" and params[0].styles == ("Watercolor",)
    status, more, _ = run(capsys, "generate", "a fox", "--model", str(tiny_sd), "--seed", "7", "--steps", "2",
                          "--out", str(tmp_path))  # fmt: skip
    assert status == 0 and len(list(tmp_path.iterdir())) == 3, "nothing is overwritten"


def test_generate_takes_midjourneys_parameters_loras_and_says_what_it_left_out(capsys, tmp_path, tiny_sd):
    from tests.tiny_models import build_lora

    build_lora(tiny_sd, tmp_path / "loras" / "detail.safetensors")
    status, [path], err = run(
        capsys, "generate", "a brick wall --ar 16:9 --no moss --weird 1", "--model", str(tiny_sd), "--tile",
        "--chaos", "30", "--stylize", "200", "--lora", "detail:0.5", "--loras", str(tmp_path / "loras"),
        "--steps", "2", "--seed", "1", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert status == 0
    assert "note: --weird 1 is not something this studio does: it was left out" in err.splitlines()
    made = read_parameters(path)
    assert (made.user_prompt, made.width, made.height) == ("a brick wall", 88, 48)
    assert made.negative_prompt.startswith("moss")  # and a style's, when --chaos drew one
    assert made.extras["loras"] == ["detail:0.5"] and made.extras["lora_hashes"].startswith("detail: ")
    assert (made.extras["tile"], made.extras["chaos"], made.extras["stylize"]) == (True, 30, 200)


def test_p_steers_with_the_local_users_profile_beside_the_studios_results(capsys, tmp_path, tiny_sd):
    from studio.core.profiles import LOCAL_OWNER, Profiles

    generate = ("generate", "a fox --p", "--model", str(tiny_sd), "--steps", "1", "--out", str(tmp_path))
    status, _, err = run(capsys, *generate)
    assert status == 2 and "There is no taste profile in" in err
    profiles = Profiles(tmp_path / "profiles")
    code = profiles.create(LOCAL_OWNER).code
    profiles.rate(LOCAL_OWNER, code, Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue"))
    status, [path], _ = run(capsys, *generate)
    assert status == 0 and read_parameters(path).extras["personalize"] == code


def test_upscale_and_style_on_a_photo(capsys, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(skimage.data.astronaut()).resize((96, 64)).save(photo)
    status, [upscaled], _ = run(
        capsys, "upscale", str(photo), "--upscaler", "Real-ESRGAN AnimeVideo v3 x2", "--scale", "2",
        "--out", str(tmp_path / "up"),
    )  # fmt: skip
    assert status == 0 and Image.open(upscaled).size == (192, 128)
    assert read_parameters(upscaled).extras["upscaler"] == "Real-ESRGAN AnimeVideo v3 x2"
    status, [styled], _ = run(
        capsys, "style", str(photo), "--style", "Night Swirl", "--style", "Amber Oil:0.5", "--working-size",
        "256", "--out", str(tmp_path / "styled"),
    )  # fmt: skip
    assert status == 0 and Image.open(styled).size == (96, 64)
    assert read_parameters(styled).extras["neural_styles"] == ["Night Swirl", "Amber Oil"]


def test_bad_input_is_one_line_and_status_2(capsys, tmp_path):
    status, _, err = run(capsys, "style", str(tmp_path / "missing.png"), "--style", "Night Swirl")
    assert status == 2 and err.startswith("error: The image") and "could not be read" in err
    status, _, err = run(capsys, "style", __file__, "--style", "Nope", "--out", str(tmp_path))
    assert status == 2 and "could not be read" in err
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(photo)
    status, _, err = run(capsys, "style", str(photo), "--style", "Nope", "--out", str(tmp_path))
    assert status == 2 and "Unknown style 'Nope'" in err


def test_the_console_script_is_installed():
    listed = subprocess.run(["studio", "style", "--list"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0
    names = listed.stdout.splitlines()
    assert len(names) == 26 and "Night Swirl" in names


def test_flags_left_out_take_the_request_types_defaults(capsys):
    from pipelines.upscale import UpscaleRequest
    from studio.cli import build_parser

    args = vars(build_parser().parse_args(["upscale", "photo.png", "--creative", "--tile", "128"]))
    assert args["tile_size"] == 128 and "scale" not in args and "upscaler" not in args, "absent: the default"
    assert args["creative"] == UpscaleRequest.default("creative_strength")
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    shown = capsys.readouterr().out
    assert f"(default {UpscaleRequest.default('tile_size')})" in shown
    assert f"(default {UpscaleRequest.default('upscaler')})" in shown


def test_the_tiny_model_writer_takes_real_arguments(tmp_path):
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "tests.tiny_models", "--help"], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )  # fmt: skip
    assert shown.returncode == 0 and "usage: python -m tests.tiny_models" in shown.stdout
    assert list(tmp_path.iterdir()) == [], "no model written into a folder named --help"
    from tests.tiny_models import main as write_tiny_model

    with pytest.raises(SystemExit):
        write_tiny_model([])  # the folder is required
    assert write_tiny_model([str(tmp_path / "tiny"), "sd"]) == 0
    assert (tmp_path / "tiny" / "model_index.json").is_file()


def test_help_texts_say_each_numbers_range_from_the_requests_own_bounds():
    import gradio as gr

    from pipelines.diffusion import GenerationRequest
    from studio.cli import build_parser
    from studio.ui.endpoints import field

    low, high = GenerationRequest.bounds("chaos")
    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    chaos = next(action for action in generate._actions if "--chaos" in action.option_strings)
    assert chaos.help.startswith(f"how much the images vary, {low} to {high}")
    doc = field(GenerationRequest, "guidance_scale", gr.Slider(), "classifier-free guidance.").doc
    assert doc == "classifier-free guidance. Takes 0 to 30."
