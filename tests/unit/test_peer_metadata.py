"""PNG Info reads the files other studios write: real files in tests/data/peer_images/ (written by those
studios), and files written here in the formats those studios document."""

import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from studio.core.metadata import GenerationParameters, read_parameters, save_png
from studio.core.peer_metadata import describe_peer_parameters

PEER_IMAGES = Path(__file__).resolve().parents[1] / "data" / "peer_images"
A1111_TEXT = (
    "a lighthouse at dusk, oil painting\nNegative prompt: blurry, text\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567, Size: 768x512, "
    'Model hash: 31e35c80fc, Model: dreamshaper_8, Lora hashes: "detail: abc123, style: def456", '
    "Version: v1.10.1"
)


def peer(name: str) -> Path:
    return PEER_IMAGES / name


def png_with(tmp_path: Path, name: str, **chunks: str) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    path = tmp_path / name
    Image.new("RGB", (16, 16), "gray").save(path, pnginfo=info)
    return path


def with_user_comment(tmp_path: Path, name: str, text: str) -> Path:
    """A JPEG or WebP carrying `text` as EXIF UserComment, as AUTOMATIC1111 writes it (piexif's 'unicode'
    encoding: the 8-byte UNICODE prefix, then UTF-16 big-endian)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    path = tmp_path / name
    Image.new("RGB", (16, 16), "gray").save(path, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("name", ["a1111.jpg", "a1111.webp"])
def test_automatic1111_jpeg_and_webp_user_comment(tmp_path, name):
    fields = read_parameters(with_user_comment(tmp_path, name, A1111_TEXT))
    assert fields["generator"] == "AUTOMATIC1111"
    assert (fields["prompt"], fields["negative_prompt"]) == (
        "a lighthouse at dusk, oil painting",
        "blurry, text",
    )
    assert (fields["steps"], fields["seed"], fields["guidance_scale"]) == (28, 1234567, 6.5)
    assert (fields["sampler"], fields["scheduler"], fields["model"]) == (
        "DPM++ 2M",
        "Karras",
        "dreamshaper_8",
    )
    assert (fields["width"], fields["height"]) == (768, 512)
    assert fields["settings"]["Lora hashes"] == "detail: abc123, style: def456", "quoted values stay whole"


def test_automatic1111_stealth_parameters_in_the_alpha_channel():
    fields = read_parameters(peer("automatic1111_stealth.png"))
    assert fields["generator"] == "AUTOMATIC1111" and fields["prompt"] == "a circle"
    assert (fields["steps"], fields["seed"], fields["sampler"]) == (20, 2015833630, "Euler")
    assert (fields["width"], fields["height"]) == (64, 64) and fields["model"] == "realisticVisionV51_v51VAE"


def test_fooocus_json_scheme(tmp_path):
    scheme = {
        "prompt": "a red fox in snow", "negative_prompt": "lowres",
        "styles": "['Fooocus V2', 'Fooocus Photograph']",
        "performance": "Speed", "resolution": "(1152, 896)", "guidance_scale": 4, "sharpness": 2,
        "adm_guidance": "(1.5, 0.8, 0.3)", "base_model": "juggernautXL_v8Rundiffusion",
        "base_model_hash": "aeb7e9e689", "refiner_model": "None", "sampler": "dpmpp_2m_sde_gpu",
        "scheduler": "karras", "seed": "8512389045239914273", "steps": 30, "version": "Fooocus v2.3.1",
    }  # fmt: skip
    path = png_with(tmp_path, "fooocus.png", parameters=json.dumps(scheme), fooocus_scheme="fooocus")
    fields = read_parameters(path)
    assert fields["generator"] == "Fooocus" and fields["prompt"] == "a red fox in snow"
    assert fields["seed"] == 8512389045239914273, "a 64-bit seed is kept as written"
    assert (fields["sampler"], fields["scheduler"], fields["steps"]) == ("dpmpp_2m_sde_gpu", "karras", 30)
    assert (fields["width"], fields["height"]) == (1152, 896) and fields[
        "model"
    ] == "juggernautXL_v8Rundiffusion"


def test_invokeai_newest_older_and_oldest_forms(tmp_path):
    metadata = {
        "generation_mode": "txt2img", "positive_prompt": "a tiny house on a cliff", "negative_prompt": "fog",
        "width": 512, "height": 768, "seed": 4217, "steps": 30, "cfg_scale": 7.5, "scheduler": "euler_a",
        "model": {"model_name": "stable-diffusion-v1-5", "base_model": "sd-1", "model_type": "main"},
    }  # fmt: skip
    fields = read_parameters(png_with(tmp_path, "invoke.png", invokeai_metadata=json.dumps(metadata)))
    assert fields["generator"] == "InvokeAI" and fields["prompt"] == "a tiny house on a cliff"
    assert (fields["seed"], fields["steps"], fields["guidance_scale"]) == (4217, 30, 7.5)
    assert (fields["sampler"], fields["model"], fields["width"]) == ("euler_a", "stable-diffusion-v1-5", 512)
    for name in ("invokeai_sdmeta1.png", "invokeai_dream1.png"):  # written by InvokeAI itself
        older = read_parameters(peer(name))
        assert older["generator"] == "InvokeAI" and older["prompt"].startswith("professional full body photo")
        assert (older["seed"], older["steps"], older["sampler"]) == (2980747362, 50, "k_lms")
        assert older["negative_prompt"].startswith("rendering, glowing eyes")


def test_novelai_comment(tmp_path):
    comment = {"steps": 28, "sampler": "k_euler_ancestral", "seed": 3851, "strength": 0.7, "noise": 0.2,
               "scale": 11.0, "uc": "lowres, bad hands", "width": 832, "height": 1216}  # fmt: skip
    chunks = {"Title": "AI generated image", "Description": "a girl with an umbrella", "Software": "NovelAI"}
    chunks.update(Source="Stable Diffusion 1D44365E", Comment=json.dumps(comment))
    path = png_with(tmp_path, "novelai.png", **chunks)
    fields = read_parameters(path)
    assert fields["generator"] == "NovelAI" and fields["prompt"] == "a girl with an umbrella"
    assert (fields["negative_prompt"], fields["seed"], fields["guidance_scale"]) == (
        "lowres, bad hands",
        3851,
        11,
    )
    assert (fields["sampler"], fields["width"], fields["height"]) == ("k_euler_ancestral", 832, 1216)
    assert fields["steps"] == 28, "NovelAI keeps its steps in the Comment JSON too"
    assert "steps" not in fields["settings"] and "uc" not in fields["settings"], "each field shown once"


def test_comfyui_reads_the_sampler_node_and_the_text_nodes_it_uses():
    fields = read_parameters(peer("night_evening_day_morning_cropped.png"))
    assert fields["generator"] == "ComfyUI"
    assert (fields["seed"], fields["steps"], fields["guidance_scale"]) == (335608130539327, 13, 8.5)
    assert (fields["sampler"], fields["scheduler"], fields["model"]) == (
        "dpmpp_sde",
        "normal",
        "Anything-V3.0.ckpt",
    )
    assert fields["prompt"].startswith("(best quality) (daytime:1.2) sky (blue)")
    assert fields["negative_prompt"].startswith("(hands), text, error, cropped")
    two_passes = read_parameters(peer("unclip_2pass_cropped.png"))
    assert (two_passes["seed"], two_passes["sampler"]) == (1106257833005336, "uni_pc_bh2"), "the first pass"


def test_our_own_chunk_is_read_first_and_exactly(tmp_path):
    ours = GenerationParameters(
        task="txt2img", prompt="styled: a cat", negative_prompt="ugly", steps=3, sampler="Euler",
        guidance_scale=5,
        seed=11, width=64, height=64, model="tiny", user_prompt="a cat", styles=("Cinematic",),
    )  # fmt: skip
    path = tmp_path / "ours.png"
    save_png(Image.new("RGB", (8, 8)), path, ours)
    assert read_parameters(path) == ours


def test_a_file_without_parameters_reads_as_none_and_is_described_for_people(tmp_path):
    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (8, 8)).save(plain)
    assert read_parameters(plain) is None
    text = describe_peer_parameters(read_parameters(with_user_comment(tmp_path, "a.jpg", A1111_TEXT)))
    assert text.splitlines()[0] == "Made with AUTOMATIC1111"
    assert "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567" in text


def test_a_new_image_is_never_read_as_the_one_before(tmp_path):
    """sd-parsers remembers the last image by id(), which a new image can reuse: each read starts afresh."""
    for index in range(20):
        with_comment = with_user_comment(
            tmp_path, f"{index}.jpg", A1111_TEXT.replace("lighthouse", f"tower {index}")
        )
        assert read_parameters(with_comment)["prompt"].startswith(f"a tower {index} at dusk")
        plain = tmp_path / f"plain{index}.jpg"
        Image.new("RGB", (8, 8)).save(plain)
        assert read_parameters(plain) is None
