"""Model families beyond SD and SDXL, on tiny random models of each (diffusers layout, loaded back by path):
their images equal diffusers' own pipeline for the same settings, they are recorded and read back, and what a
family cannot do is refused plainly, naming it. Every task × feature for each family: tests/matrix."""

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.blend import BlendPipeline
from pipelines.image_to_image import ImageToImagePipeline
from pipelines.inpaint import InpaintPipeline
from pipelines.parts.conditioning import plain_text
from pipelines.text_to_image import TextToImagePipeline
from studio.core.errors import InvalidRequest
from studio.core.metadata import read_parameters, save_png
from studio.core.presets import ModelPreset
from studio.core.requests import parse_request
from tests.tiny_models import build_gguf_transformer, build_lora, build_qwen_image, build_redux, build_sd3

PROMPT = "a (lighthouse:1.3) on a granite cliff at dusk, " + "waves breaking in white foam, " * 8


def run(task, model, **values):
    values = {"prompt": PROMPT, "model": str(model), "steps": 3, "seed": 11, **values}
    return task(parse_request(task.request_type, values))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def from_diffusers(pipeline_class, model):
    """diffusers' own pipeline of `model`, to compare with, quiet."""
    pipe = pipeline_class.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def flux_diffusers(tiny_flux):
    from diffusers import FluxImg2ImgPipeline, FluxPipeline

    text = from_diffusers(FluxPipeline, tiny_flux)
    return text, FluxImg2ImgPipeline(**text.components)


def test_flux_text_to_image_equals_diffusers_on_the_machines_default_backend(
    cache, presets, tiny_flux, flux_diffusers
):
    [made] = run(TextToImagePipeline(cache, presets), tiny_flux, negative_prompt="blurry")
    text, _ = flux_diffusers
    expected = text(
        plain_text(PROMPT), num_inference_steps=3, guidance_scale=3.5, height=64, width=64,
        generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    recorded = made.parameters
    assert (recorded.sampler, recorded.steps, recorded.guidance_scale) == ("Euler", 3, 3.5)
    assert recorded.extras["backend"] == "torch", "OpenVINO does not run FLUX.1: torch does, and says so"
    assert recorded.extras["ignored_parameters"] == [
        "FLUX.1 models cannot weigh words: prompt weights are read as plain words.",
        "FLUX.1 models cannot use a negative prompt: its guidance is distilled.",
    ]
    assert recorded.user_prompt == PROMPT.strip(), "recorded as typed"


def test_flux_image_to_image_equals_diffusers_and_a_saved_image_is_read_back(
    cache, presets, tiny_flux, flux_diffusers, tmp_path
):
    photo = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    [made] = run(ImageToImagePipeline(cache, presets), tiny_flux, image=photo, strength=0.6, steps=5)
    _, image_to_image = flux_diffusers
    expected = image_to_image(
        plain_text(PROMPT), image=photo, strength=0.6, num_inference_steps=5, guidance_scale=3.5,
        height=64, width=64, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    path = tmp_path / "flux.png"
    save_png(made.image, path, made.parameters)
    back = read_parameters(path)
    assert (back.model, back.sampler, back.steps, back.guidance_scale, back.seed) == (
        str(tiny_flux),
        "Euler",
        5,
        3.5,
        11,
    )
    assert back.extras["denoising_strength"] == 0.6


def test_flux_inpaints_inside_the_mask_only(cache, presets, tiny_flux):
    photo = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    [made] = run(InpaintPipeline(cache, presets), tiny_flux, image=photo, mask=mask, mask_blur=0)
    inside, outside = np.asarray(mask) > 0, np.asarray(mask) == 0
    difference = np.abs(pixels(made.image) - pixels(photo)).max(axis=2)
    assert difference[outside].max() == 0 and difference[inside].mean() > 5


def test_a_flux_fill_checkpoint_inpaints_as_diffusers_fill_pipeline_and_only_inpaints(
    cache, presets, tiny_flux_fill
):
    from diffusers import FluxFillPipeline

    from pipelines.outpaint import OutpaintPipeline

    photo = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    [made] = run(InpaintPipeline(cache, presets), tiny_flux_fill, image=photo, mask=mask, mask_blur=0)
    raw = from_diffusers(FluxFillPipeline, tiny_flux_fill)
    expected = raw(
        plain_text(PROMPT), image=photo, mask_image=mask, strength=1.0, num_inference_steps=3,
        guidance_scale=3.5, height=64, width=64, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    inside, outside = np.asarray(mask) > 0, np.asarray(mask) == 0
    difference = np.abs(pixels(made.image) - pixels(expected)).max(axis=2)
    assert difference[inside].max() <= 2, "inside the mask: the Fill pipeline's own pixels"
    assert np.array_equal(pixels(made.image)[outside], pixels(photo)[outside])
    assert made.parameters.extras["inpaint_model"] == "same as model"
    [wider] = run(OutpaintPipeline(cache, presets), tiny_flux_fill, image=photo, direction="pan_right")
    assert wider.image.size == (96, 64) and np.array_equal(pixels(wider.image)[:, :64], pixels(photo))
    with pytest.raises(InvalidRequest, match=r"is an inpainting model: use it for inpainting"):
        run(TextToImagePipeline(cache, presets), tiny_flux_fill)
    with pytest.raises(InvalidRequest, match=r"is an inpainting model: use it in Inpaint"):
        run(ImageToImagePipeline(cache, presets), tiny_flux_fill, image=photo)


def test_a_flux_preset_naming_a_fill_checkpoint_inpaints_with_its_transformer_beside_the_base_models(
    cache, presets, tiny_flux, tiny_flux_fill
):
    from diffusers import FluxFillPipeline

    tiny = ModelPreset(
        name="tiny-flux", label="Tiny FLUX.1", source=str(tiny_flux), inpaint_source=str(tiny_flux_fill),
        family="flux", resolution=256, steps=3, guidance_scale=3.5, sampler="Euler",
    )  # fmt: skip
    presets = dataclasses.replace(presets, models={**presets.models, tiny.name: tiny})
    photo = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (8, 8, 40, 56))
    [made] = run(InpaintPipeline(cache, presets), "tiny-flux", image=photo, mask=mask, mask_blur=0)
    assert made.parameters.extras["inpaint_model"] == str(tiny_flux_fill)
    # diffusers' Fill pipeline on the base model's text encoders and autoencoder, with the Fill transformer
    transformer = from_diffusers(FluxFillPipeline, tiny_flux_fill).transformer
    fill = FluxFillPipeline.from_pretrained(tiny_flux, transformer=transformer)
    fill.set_progress_bar_config(disable=True)
    expected = fill(
        plain_text(PROMPT), image=photo, mask_image=mask, num_inference_steps=3, guidance_scale=3.5,
        height=64, width=64, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    inside = np.asarray(mask) > 0
    assert np.abs(pixels(made.image) - pixels(expected)).max(axis=2)[inside].max() <= 2
    assert cache.stats().weight_loads == 2, "the base model, then only the Fill checkpoint's transformer"
    [unit] = cache.memory_report()["models"]
    assert "text_encoder_2" in unit["components"], "one T5 serves both"


def test_a_flux_model_samples_by_flow_matching_whichever_sampler_the_page_sends(cache, presets, tiny_flux):
    task = TextToImagePipeline(cache, presets)
    euler = run(task, tiny_flux, steps=2, sampler="Euler", prompt="a fox")[0]
    assert euler.parameters.sampler == "Euler" and "ignored_parameters" not in euler.parameters.extras
    assert (euler.parameters.steps, euler.parameters.guidance_scale) == (2, 3.5), "the family's guidance"
    # The page always sends its sampler: one with no flow-matching form gives way to Euler's, and says so
    other = run(task, tiny_flux, steps=2, sampler="DPM++ 2M Karras", prompt="a fox")[0]
    assert other.parameters.sampler == "Euler"
    assert np.array_equal(pixels(other.image), pixels(run(task, tiny_flux, steps=2, prompt="a fox")[0].image))
    assert other.parameters.extras["ignored_parameters"] == [
        "FLUX.1 models sample by flow matching, which DPM++ 2M Karras has no form of."
    ]
    with pytest.raises(InvalidRequest, match=r"^There is no fast decoder for FLUX\.1 models: choose Full\.$"):
        run(task, tiny_flux, decoder="fast")


def test_a_flux_models_components_are_loaded_once_and_counted_in_bytes(cache, presets, tiny_flux):
    task = TextToImagePipeline(cache, presets)
    run(task, tiny_flux, steps=1)
    run(ImageToImagePipeline(cache, presets), tiny_flux, steps=2, image=Image.new("RGB", (64, 64), "teal"))
    assert cache.stats().weight_loads == 1, "Vary reuses the loaded transformer and text encoders"
    [unit] = cache.memory_report()["models"]
    components = unit["components"]
    assert {"transformer", "text_encoder", "text_encoder_2", "vae"} <= set(components)
    assert components["transformer"] > 0 and components["text_encoder_2"] > 0


def sd3_with_the_t5_of(flux, folder):
    """An SD 3.5 model whose T5 is, file for file, the FLUX.1 model's (as the real ones' T5-XXL are)."""
    sd3 = build_sd3(folder)
    shutil.rmtree(sd3 / "text_encoder_3")
    shutil.copytree(flux / "text_encoder_2", sd3 / "text_encoder_3")
    return sd3


def test_a_shared_text_encoder_is_kept_when_ram_is_made_for_the_model_that_takes_it(
    presets, tiny_flux, tmp_path
):
    from studio.core.cache import ModelCache
    from studio.core.devices import resolve_device
    from studio.core.memory import MemoryBudget
    from studio.core.models import resolve_model, weight_bytes_on_disk

    sd3 = sd3_with_the_t5_of(tiny_flux, tmp_path / "sd3")
    probe = ModelCache(resolve_device("cpu"), offline=True)
    run(TextToImagePipeline(probe, presets), tiny_flux, steps=1)
    flux_bytes = probe.stats().total_bytes
    t5_bytes = probe.memory_report()["models"][0]["components"]["text_encoder_2"]
    probe.clear(collect=False)
    # RAM for FLUX.1 and the SD 3.5 model's own parts, not for a second T5
    budget = MemoryBudget(
        None, flux_bytes + weight_bytes_on_disk(resolve_model(str(sd3), presets)) - t5_bytes // 2
    )
    cache = ModelCache(resolve_device("cpu"), offline=True, budget=budget)
    task = TextToImagePipeline(cache, presets)
    run(task, tiny_flux, steps=1)
    run(task, sd3, steps=1)
    flux, sd = (cache.registry.base_models[str(model)] for model in (tiny_flux, sd3))
    assert sd.components["text_encoder_3"] is flux.components["text_encoder_2"]
    cache.clear(collect=False)


def test_a_text_encoder_two_families_share_is_loaded_once_and_kept_while_either_uses_it(
    cache, presets, tiny_flux, tmp_path
):
    from diffusers import StableDiffusion3Pipeline

    sd3 = sd3_with_the_t5_of(tiny_flux, tmp_path / "sd3")
    task = TextToImagePipeline(cache, presets)
    run(task, tiny_flux, steps=1)
    [made] = run(task, sd3, steps=2, negative_prompt="blurry")
    assert cache.stats().weight_loads == 2
    flux, sd = (cache.registry.base_models[str(model)] for model in (tiny_flux, sd3))
    assert sd.components["text_encoder_3"] is flux.components["text_encoder_2"], "one T5, not two"
    assert sd.components["text_encoder"] is not flux.components["text_encoder"], "their CLIPs differ"
    units = {unit["name"]: unit["components"] for unit in cache.memory_report()["models"]}
    assert "text_encoder_3" not in units[str(sd3)] and units[str(tiny_flux)]["text_encoder_2"] > 0
    expected = from_diffusers(StableDiffusion3Pipeline, sd3)(
        plain_text(PROMPT), negative_prompt="blurry", num_inference_steps=2, guidance_scale=4.5,
        height=64, width=64, generator=generator(11), max_sequence_length=256,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2, "the shared T5 reads as its own would"
    # The model that loaded it goes; the one still using it keeps it, counted once
    cache.registry.drop(str(tiny_flux))
    [unit] = cache.memory_report()["models"]
    assert unit["name"] == str(sd3) and unit["components"]["text_encoder_3"] > 0
    [again] = run(task, sd3, steps=2, negative_prompt="blurry")
    assert np.array_equal(pixels(again.image), pixels(made.image)) and cache.stats().weight_loads == 2


def test_sd3_text_to_image_guides_with_its_negative_prompt_and_equals_diffusers(cache, presets, tiny_sd3):
    from diffusers import StableDiffusion3Pipeline

    [made] = run(TextToImagePipeline(cache, presets), tiny_sd3, negative_prompt="blurry, (grain:1.2)")
    assert (made.parameters.sampler, made.parameters.guidance_scale) == ("Euler", 4.5), "the family's own"
    assert made.parameters.extras["ignored_parameters"] == [
        "SD 3.5 models cannot weigh words: prompt weights are read as plain words."
    ]
    raw = from_diffusers(StableDiffusion3Pipeline, tiny_sd3)
    expected = raw(
        plain_text(PROMPT), negative_prompt="blurry, grain", num_inference_steps=3, guidance_scale=4.5,
        height=64, width=64, generator=generator(11), max_sequence_length=256,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    unguided = run(TextToImagePipeline(cache, presets), tiny_sd3, negative_prompt="blurry", guidance_scale=1)
    ignored = run(TextToImagePipeline(cache, presets), tiny_sd3, guidance_scale=1)
    assert np.array_equal(pixels(unguided[0].image), pixels(ignored[0].image)), "no guidance: no negative"


def test_an_instruction_edit_by_a_kontext_model_equals_diffusers_and_keeps_the_images_size(
    cache, presets, tiny_flux_kontext
):
    from diffusers import FluxKontextPipeline

    from pipelines.edit import EditPipeline

    photo = Image.effect_mandelbrot((96, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    [made] = run(EditPipeline(cache, presets), tiny_flux_kontext, prompt="make it night", image=photo)
    assert made.image.size == (96, 64) and made.parameters.task == "edit"
    raw = from_diffusers(FluxKontextPipeline, tiny_flux_kontext)
    expected = raw(
        image=photo, prompt="make it night", num_inference_steps=3, guidance_scale=3.5, width=96, height=64,
        max_area=96 * 64, generator=generator(11), max_sequence_length=512, _auto_resize=False,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2


def test_edit_refuses_a_family_without_an_editing_pipeline_and_a_model_not_made_for_it(
    cache, presets, tiny_sd, tiny_flux
):
    from pipelines.edit import EditPipeline

    edit, photo = EditPipeline(cache, presets), Image.new("RGB", (64, 64), "teal")
    with pytest.raises(InvalidRequest) as refused:
        run(edit, tiny_sd, prompt="make it night", image=photo)
    assert (
        str(refused.value) == "Instruction editing is not available for Stable Diffusion 1.x/2.x models yet."
    )
    with pytest.raises(InvalidRequest) as refused:
        run(edit, tiny_flux, prompt="make it night", image=photo)
    assert str(refused.value) == (
        f"{tiny_flux} is not an instruction-editing model (a FluxKontextPipeline checkpoint): "
        "choose flux-kontext, flux2-klein-4b, qwen-image-edit."
    )


def test_zimage_text_to_image_equals_diffusers_with_its_negative_prompt_and_turbos_defaults(
    cache, presets, tiny_zimage
):
    from diffusers import ZImagePipeline

    [made] = run(TextToImagePipeline(cache, presets), tiny_zimage, negative_prompt="blurry", guidance_scale=4)
    assert made.parameters.extras["backend"] == "torch", (
        "OpenVINO does not run Z-Image: torch does, and says so"
    )
    assert made.parameters.extras["ignored_parameters"] == [
        "Z-Image models cannot weigh words: prompt weights are read as plain words."
    ]
    raw = from_diffusers(ZImagePipeline, tiny_zimage)
    expected = raw(
        plain_text(PROMPT), negative_prompt="blurry", num_inference_steps=3, guidance_scale=4, height=64,
        width=64, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    [turbo] = run(TextToImagePipeline(cache, presets), tiny_zimage, steps=None, sampler="DPM++ 2M Karras")
    recorded = turbo.parameters
    assert (recorded.steps, recorded.guidance_scale, recorded.sampler) == (9, 0.0, "Euler"), (
        "a Z-Image model with no preset runs as Z-Image-Turbo does, on the flow form of Euler"
    )


def test_zimage_image_to_image_equals_diffusers_and_inpaint_keeps_the_image_outside_its_mask(
    cache, presets, tiny_zimage
):
    from diffusers import ZImageImg2ImgPipeline

    photo = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    [made] = run(ImageToImagePipeline(cache, presets), tiny_zimage, image=photo, strength=0.6, steps=5)
    raw = from_diffusers(ZImageImg2ImgPipeline, tiny_zimage)
    expected = raw(
        plain_text(PROMPT), image=photo, strength=0.6, num_inference_steps=5, guidance_scale=0.0, height=64,
        width=64, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    [painted] = run(InpaintPipeline(cache, presets), tiny_zimage, image=photo, mask=mask)
    assert painted.parameters.task == "inpaint" and painted.image.size == photo.size
    with pytest.raises(InvalidRequest, match="Z-Image models cannot make seamless tiles"):
        run(TextToImagePipeline(cache, presets), tiny_zimage, tile=True)


@pytest.fixture
def qwen_presets(presets, tiny_qwen_image):
    """The presets with the tiny Qwen-Image at 64² (its autoencoder names no size; the family's is 1328²)."""
    tiny = ModelPreset(
        name="tiny-qwen-image", label="Tiny Qwen-Image", source=str(tiny_qwen_image), family="qwen",
        resolution=256, steps=3, guidance_scale=4.0, sampler="Euler",
    )  # fmt: skip
    return dataclasses.replace(presets, models={**presets.models, tiny.name: tiny})


def test_qwen_image_guides_by_true_cfg_with_its_negative_prompt_and_equals_diffusers(
    cache, qwen_presets, tiny_qwen_image
):
    from diffusers import QwenImageImg2ImgPipeline, QwenImagePipeline

    presets = qwen_presets
    [made] = run(TextToImagePipeline(cache, presets), "tiny-qwen-image", negative_prompt="blurry")
    recorded = made.parameters
    assert (recorded.guidance_scale, recorded.sampler, recorded.extras["backend"]) == (4.0, "Euler", "torch")
    assert made.image.size == (256, 256)
    raw = from_diffusers(QwenImagePipeline, tiny_qwen_image)
    expected = raw(
        plain_text(PROMPT), negative_prompt="blurry", true_cfg_scale=4.0, num_inference_steps=3, height=256,
        width=256, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2, "the family's guidance is true CFG"
    photo = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    [varied] = run(
        ImageToImagePipeline(cache, presets), "tiny-qwen-image", image=photo, strength=0.6, steps=5
    )
    image_to_image = QwenImageImg2ImgPipeline(**raw.components)
    expected = image_to_image(  # guided with an empty negative prompt, as Qwen-Image's own examples do
        plain_text(PROMPT), negative_prompt="", image=photo, strength=0.6, true_cfg_scale=4.0,
        num_inference_steps=5, height=64, width=64, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(varied.image) - pixels(expected)).max() <= 2
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    [painted] = run(InpaintPipeline(cache, presets), "tiny-qwen-image", image=photo, mask=mask)
    assert painted.parameters.task == "inpaint" and painted.image.size == photo.size


@pytest.fixture(scope="module")
def family_loras(tiny_flux, tiny_flux2_klein, tiny_sd3, tiny_zimage, tiny_qwen_image, tmp_path_factory):
    """A tiny LoRA of each transformer family (its attention; FLUX.1's and SD 3.5's CLIPs too)."""
    folder = tmp_path_factory.mktemp("family-loras")
    models = {"flux": tiny_flux, "flux2": tiny_flux2_klein, "sd3": tiny_sd3, "zimage": tiny_zimage,
              "qwen": tiny_qwen_image}  # fmt: skip
    for seed, (family, model) in enumerate(models.items(), start=20):
        build_lora(model, folder / f"{family}-ink.safetensors", seed=seed, text_encoders=True)
    return folder


def test_a_flux_lora_equals_diffusers_loading_it_and_is_recorded(cache, presets, tiny_flux, family_loras):
    from diffusers import FluxPipeline

    task = TextToImagePipeline(cache, presets, loras_dir=family_loras)
    [made] = run(task, tiny_flux, loras=("flux-ink:0.8",))
    raw = from_diffusers(FluxPipeline, tiny_flux)
    raw.load_lora_weights(str(family_loras / "flux-ink.safetensors"), adapter_name="ink")
    raw.set_adapters(["ink"], adapter_weights=[0.8])
    expected = raw(
        plain_text(PROMPT), num_inference_steps=3, guidance_scale=3.5, height=64, width=64,
        generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    assert made.parameters.extras["loras"] == ["flux-ink:0.8"]
    assert made.parameters.extras["lora_hashes"].startswith("flux-ink: ")


@pytest.mark.parametrize("family", ["flux", "flux2", "sd3", "zimage", "qwen"])
def test_every_transformer_family_takes_a_lora_for_its_run_only(
    cache, qwen_presets, family_loras, tiny_flux, tiny_flux2_klein, tiny_sd3, tiny_zimage, family
):
    models = {"flux": tiny_flux, "flux2": tiny_flux2_klein, "sd3": tiny_sd3, "zimage": tiny_zimage,
              "qwen": "tiny-qwen-image"}  # fmt: skip
    task = TextToImagePipeline(cache, qwen_presets, loras_dir=family_loras)
    plain = run(task, models[family], steps=2)[0].image
    inked = run(task, models[family], steps=2, loras=(f"{family}-ink",))[0].image
    assert not np.array_equal(pixels(inked), pixels(plain)), "the LoRA changes the image"
    after = run(task, models[family], steps=2)[0].image
    assert np.array_equal(pixels(after), pixels(plain)), "the next run without it sees the base model"
    unweighted = run(task, models[family], steps=2, loras=(f"{family}-ink:0",))[0].image
    assert np.array_equal(pixels(unweighted), pixels(plain)), "weight 0 is the base model itself"


def test_flux2_klein_draws_and_edits_as_diffusers_does_inpaints_and_refuses_image_to_image(
    cache, presets, tiny_flux2_klein
):
    from diffusers import Flux2KleinInpaintPipeline, Flux2KleinPipeline

    from pipelines.edit import EditPipeline

    [made] = run(TextToImagePipeline(cache, presets), tiny_flux2_klein, negative_prompt="blurry")
    recorded = made.parameters
    assert (recorded.steps, recorded.guidance_scale, recorded.sampler) == (3, 1.0, "Euler")
    assert recorded.extras["backend"] == "torch"
    assert "FLUX.2 [klein] models cannot use a negative prompt" in recorded.extras["ignored_parameters"][1]
    raw = from_diffusers(Flux2KleinPipeline, tiny_flux2_klein)
    assert raw.config.is_distilled, "the checkpoint's own setting reaches the pipelines built on it"
    expected = raw(
        prompt=plain_text(PROMPT), num_inference_steps=3, guidance_scale=1.0, height=64, width=64,
        generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    photo = Image.effect_mandelbrot((96, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    [edited] = run(EditPipeline(cache, presets), tiny_flux2_klein, prompt="make it night", image=photo)
    assert edited.image.size == (96, 64) and edited.parameters.task == "edit"
    expected = raw(
        image=photo, prompt="make it night", num_inference_steps=3, guidance_scale=1.0, width=96, height=64,
        generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(edited.image) - pixels(expected)).max() <= 2
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    [painted] = run(InpaintPipeline(cache, presets), tiny_flux2_klein, image=photo, mask=mask, mask_blur=0)
    expected = Flux2KleinInpaintPipeline(**raw.components)(
        prompt=plain_text(PROMPT), image=photo, mask_image=mask, strength=1.0, num_inference_steps=3,
        guidance_scale=1.0, width=96, height=64, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    inside, outside = np.asarray(mask) > 0, np.asarray(mask) == 0
    assert np.abs(pixels(painted.image) - pixels(expected)).max(axis=2)[inside].max() <= 2
    assert np.array_equal(pixels(painted.image)[outside], pixels(photo)[outside])
    with pytest.raises(InvalidRequest) as refused:
        run(ImageToImagePipeline(cache, presets), tiny_flux2_klein, image=photo)
    assert str(refused.value) == "Image to image is not available for FLUX.2 [klein] models yet."
    assert cache.stats().weight_loads == 1, "drawing, editing and inpainting share the loaded components"


def test_a_qwen_image_edit_model_edits_as_diffusers_does_guided_by_its_negative_prompt(
    cache, presets, tiny_qwen_image_edit, tiny_qwen_image
):
    from diffusers import QwenImageEditPipeline

    from pipelines.edit import EditPipeline

    photo = Image.effect_mandelbrot((96, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    edit = EditPipeline(cache, presets)
    [made] = run(edit, tiny_qwen_image_edit, prompt="make it night", image=photo, negative_prompt="blurry",
                 guidance_scale=4.0)  # fmt: skip
    assert made.image.size == (96, 64) and made.parameters.guidance_scale == 4.0
    raw = from_diffusers(QwenImageEditPipeline, tiny_qwen_image_edit)
    expected = raw(
        image=photo, prompt="make it night", negative_prompt="blurry", true_cfg_scale=4.0, width=96,
        height=64, num_inference_steps=3, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    with pytest.raises(InvalidRequest) as refused:  # Qwen-Image itself draws but does not edit
        run(edit, tiny_qwen_image, prompt="make it night", image=photo)
    assert (
        "is not an instruction-editing model (a QwenImageEditPipeline or QwenImageEditPlusPipeline "
        "checkpoint)" in str(refused.value)
    )


def test_a_qwen_image_edit_plus_model_edits_with_the_pictures_its_instruction_names_as_diffusers_does(
    cache, presets, tiny_qwen_image_edit, tiny_flux_kontext, tmp_path
):
    from diffusers import QwenImageEditPlusPipeline

    from pipelines.edit import EditPipeline

    plus = build_qwen_image(tmp_path / "qwen-image-edit-plus", seed=2, plus=True)
    photo = Image.effect_mandelbrot((64, 48), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    hat = Image.new("RGB", (40, 40), "crimson")
    edit = EditPipeline(cache, presets)
    instruction = "put the hat from picture 2 on the figure in picture 1"
    [made] = run(edit, plus, prompt=instruction, image=photo, more_pictures=(hat,), negative_prompt="blurry",
                 guidance_scale=4.0, steps=2)  # fmt: skip
    assert made.image.size == (64, 48) and made.parameters.extras["edit_pictures"] == 2
    raw = from_diffusers(QwenImageEditPlusPipeline, plus)
    expected = raw(
        image=[photo, hat], prompt=instruction, negative_prompt="blurry", true_cfg_scale=4.0, width=64,
        height=48, num_inference_steps=2, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    alone = run(
        edit, plus, prompt=instruction, image=photo, negative_prompt="blurry", guidance_scale=4.0, steps=2
    )
    assert not np.array_equal(pixels(alone[0].image), pixels(made.image)), "picture 2 counts"
    for one_picture in (tiny_qwen_image_edit, tiny_flux_kontext):  # the first Qwen-Image-Edit, Kontext
        with pytest.raises(
            InvalidRequest, match=r"reads one picture, the image to edit: leave out the others\.$"
        ):
            run(edit, one_picture, prompt=instruction, image=photo, more_pictures=(hat,))


def test_sana_sprint_draws_and_varies_as_diffusers_does_with_its_own_sampler(
    cache, presets, tiny_sana_sprint
):
    from diffusers import SanaSprintImg2ImgPipeline, SanaSprintPipeline

    task = TextToImagePipeline(cache, presets)
    [made] = run(task, tiny_sana_sprint, steps=None, sampler="DPM++ 2M Karras", guidance_scale=None)
    recorded = made.parameters
    assert (recorded.steps, recorded.guidance_scale, recorded.sampler) == (2, 4.5, "SCM"), "its own defaults"
    assert "SANA-Sprint models sample with SCM only." in recorded.extras["ignored_parameters"]
    assert recorded.extras["backend"] == "torch" and made.image.size == (1024, 1024), "the family's size"
    raw = from_diffusers(SanaSprintPipeline, tiny_sana_sprint)
    expected = raw(
        prompt=plain_text(PROMPT), num_inference_steps=2, guidance_scale=4.5, height=1024, width=1024,
        generator=generator(11), max_sequence_length=300,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    [three] = run(task, tiny_sana_sprint, steps=3)  # its sampler's midpoint is for two steps only
    assert three.parameters.steps == 3 and not np.array_equal(pixels(three.image), pixels(made.image))
    photo = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    [varied] = run(ImageToImagePipeline(cache, presets), tiny_sana_sprint, image=photo, strength=0.6, steps=2)
    expected = SanaSprintImg2ImgPipeline(**raw.components)(
        prompt=plain_text(PROMPT), image=photo, strength=0.6, num_inference_steps=varied.parameters.steps,
        guidance_scale=4.5, height=64, width=64, generator=generator(11), max_sequence_length=300,
        intermediate_timesteps=1.3 if varied.parameters.steps == 2 else None,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(varied.image) - pixels(expected)).max() <= 2
    with pytest.raises(InvalidRequest) as refused:
        run(
            InpaintPipeline(cache, presets), tiny_sana_sprint, image=photo, mask=Image.new("L", (64, 64), 255)
        )
    assert str(refused.value) == "Inpainting is not available for SANA-Sprint models yet."


def test_sana_sprints_own_sampler_is_refused_for_a_model_of_another_family(cache, presets, tiny_sd):
    with pytest.raises(InvalidRequest) as refused:
        run(TextToImagePipeline(cache, presets), tiny_sd, sampler="SCM")
    assert (
        str(refused.value) == "SCM is SANA-Sprint's own sampler: choose another for Stable Diffusion 1.x/2.x."
    )


def test_int8_weights_take_a_transformers_memory_down_and_are_recorded_and_leave_unet_families_alone(
    presets, tiny_flux, tiny_sd
):
    from studio.core.cache import ModelCache
    from studio.core.devices import resolve_device

    full = ModelCache(resolve_device("cpu"), offline=True)
    int8 = ModelCache(resolve_device("cpu", quantize="int8"), offline=True)
    [plain] = run(TextToImagePipeline(full, presets), tiny_flux, prompt="a fox")
    [quantized] = run(TextToImagePipeline(int8, presets), tiny_flux, prompt="a fox")
    assert quantized.parameters.extras["quantization"] == "int8"
    assert "quantization" not in plain.parameters.extras
    assert np.abs(pixels(quantized.image) - pixels(plain.image)).mean() < 2, "8-bit weights draw the same"
    [full_unit], [int8_unit] = full.memory_report()["models"], int8.memory_report()["models"]
    transformer = full_unit["components"]["transformer"], int8_unit["components"]["transformer"]
    assert transformer[1] < 0.35 * transformer[0], f"int8 values and their scales, not 32-bit: {transformer}"
    assert int8_unit["components"]["text_encoder_2"] == full_unit["components"]["text_encoder_2"]
    [sd_plain] = run(TextToImagePipeline(full, presets), tiny_sd, prompt="a fox")
    [sd_int8] = run(TextToImagePipeline(int8, presets), tiny_sd, prompt="a fox")
    assert "quantization" not in sd_int8.parameters.extras, "a UNet family loads as it is"
    assert np.array_equal(pixels(sd_int8.image), pixels(sd_plain.image))
    for cache in (full, int8):
        cache.clear(collect=False)


def test_a_gguf_transformer_draws_as_diffusers_loading_it_beside_its_base_models_parts(
    cache, presets, tiny_flux, tmp_path
):
    from diffusers import FluxPipeline, FluxTransformer2DModel, GGUFQuantizationConfig

    gguf = build_gguf_transformer(tiny_flux, tmp_path / "tiny-flux-Q8_0.gguf")
    tiny = ModelPreset(
        name="tiny-gguf", label="Tiny FLUX.1 Q8_0", source=str(gguf), base=str(tiny_flux),
        family="flux", resolution=64, steps=3, guidance_scale=3.5, sampler="Euler",
    )  # fmt: skip
    presets = dataclasses.replace(presets, models={**presets.models, tiny.name: tiny})
    [made] = run(TextToImagePipeline(cache, presets), "tiny-gguf")
    transformer = FluxTransformer2DModel.from_single_file(
        str(gguf), config=str(tiny_flux), subfolder="transformer",
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32),
    )  # fmt: skip
    raw = FluxPipeline.from_pretrained(tiny_flux, transformer=transformer)
    raw.set_progress_bar_config(disable=True)
    expected = raw(
        plain_text(PROMPT), num_inference_steps=3, guidance_scale=3.5, height=64, width=64,
        generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    assert made.parameters.extras["quantization"] == "gguf"
    [unit] = cache.memory_report()["models"]
    full = sum(
        p.numel() * 4
        for p in FluxTransformer2DModel.from_pretrained(tiny_flux, subfolder="transformer").parameters()
    )
    assert unit["components"]["transformer"] < 0.4 * full, "8-bit blocks counted as they are held"
    photo = Image.new("RGB", (64, 64), "teal")
    [varied] = run(ImageToImagePipeline(cache, presets), "tiny-gguf", image=photo, strength=0.6)
    assert varied.parameters.extras["quantization"] == "gguf" and cache.stats().weight_loads == 1
    run(TextToImagePipeline(cache, presets), tiny_flux, steps=1)  # the base model itself, beside it
    quantized, base = (cache.registry.base_models[str(model)].components for model in (gguf, tiny_flux))
    assert all(quantized[name] is base[name] for name in ("text_encoder", "text_encoder_2", "vae"))
    assert quantized["transformer"] is not base["transformer"]


def test_a_gguf_file_says_which_base_model_it_needs_or_how_to_name_one(cache, presets, tiny_flux, tmp_path):
    from studio.core.errors import ModelUnavailable

    task = TextToImagePipeline(cache, presets)
    diffusers_layout = build_gguf_transformer(tiny_flux, tmp_path / "own-layout.gguf")
    with pytest.raises(
        InvalidRequest, match=r"cannot be told from its tensor names .* `base` in a model preset"
    ):
        run(task, diffusers_layout)
    # Black Forest Labs' own tensor names say FLUX.1 [dev]: its text encoders and VAE are not here
    original = {
        "transformer_blocks.0.attn.norm_k.weight": "double_blocks.0.img_attn.norm.key_norm.scale",
        "time_text_embed.guidance_embedder.linear_1.bias": "guidance_in.in_layer.bias",  # [dev], not schnell
        "x_embedder.weight": "img_in.weight",
    }
    original_layout = build_gguf_transformer(tiny_flux, tmp_path / "flux1-dev-Q8_0.gguf", names=original)
    with pytest.raises(
        ModelUnavailable, match=r"^flux1-dev-Q8_0\.gguf is the transformer of black-forest-labs/FLUX\.1-dev, "
    ):
        run(task, original_layout)


def test_quantizations_a_cpu_cannot_run_are_refused_at_start_naming_what_they_need():
    from studio.core.devices import resolve_device

    for quantize in ("fp8", "nf4"):
        with pytest.raises(InvalidRequest) as refused:
            resolve_device("cpu", quantize=quantize)
        assert (
            str(refused.value) == f"--quantize {quantize} needs a CUDA GPU; on this device use int8 or none."
        )
    with pytest.raises(InvalidRequest, match=r"^Unknown quantization 'int4': use none, int8, fp8, nf4\.$"):
        resolve_device("cpu", quantize="int4")


def test_an_editing_model_takes_a_character_reference_as_the_image_it_starts_from_and_others_refuse(
    cache, presets, tiny_flux2_klein, tiny_flux_kontext, tiny_sd3
):
    """--oref with FLUX.2 klein or FLUX.1 Kontext (no IP-Adapter for them): the reference goes to the
    model's editing pipeline, which makes a new picture of the requested size around it."""
    from diffusers import Flux2KleinPipeline, FluxKontextPipeline

    character = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    task = TextToImagePipeline(cache, presets)
    prompt = "the same fox in the snow"
    [klein] = run(task, tiny_flux2_klein, prompt=prompt, object_image=character)
    assert klein.parameters.extras["object_reference"] == "64x64"
    expected = from_diffusers(Flux2KleinPipeline, tiny_flux2_klein)(
        prompt=prompt, image=[character], num_inference_steps=3, guidance_scale=1.0, height=64, width=64,
        generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(klein.image) - pixels(expected)).max() <= 2
    plain = run(task, tiny_flux2_klein, prompt=prompt)[0]
    assert not np.array_equal(pixels(plain.image), pixels(klein.image)), "the reference counts"
    [kontext] = run(task, tiny_flux_kontext, prompt=prompt, object_image=character)
    expected = from_diffusers(FluxKontextPipeline, tiny_flux_kontext)(
        image=character, prompt=prompt, num_inference_steps=3, guidance_scale=3.5, width=64, height=64,
        max_area=64 * 64, generator=generator(11), max_sequence_length=512, _auto_resize=False,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(kontext.image) - pixels(expected)).max() <= 2
    with pytest.raises(InvalidRequest) as refused:
        run(task, tiny_sd3, prompt=prompt, object_image=character)
    assert str(refused.value) == (
        "SD 3.5 models cannot take a character or object reference: pick a model made for editing, which "
        "takes it as the image it starts from (flux-kontext, flux2-klein-4b, qwen-image-edit)."
    )
    with pytest.raises(InvalidRequest, match=r"^SD 3\.5 models cannot take image prompts"):
        run(task, tiny_sd3, prompt=prompt, style_images=(character,))


def test_a_preset_naming_an_editing_model_has_it_draw_a_character_reference_in_its_place(
    cache, presets, tiny_flux, tiny_flux_kontext
):
    """FLUX.1 takes no IP-Adapter here: a FLUX.1 preset names Kontext (oref_model) for --oref, which then
    draws the image with its own defaults, as if it had been chosen."""
    preset = dict(family="flux", resolution=64, guidance_scale=3.5, sampler="Euler")
    tiny = ModelPreset(name="tiny-flux", label="Tiny FLUX.1", source=str(tiny_flux), steps=3,
                       oref_model="tiny-kontext", **preset)  # fmt: skip
    kontext = ModelPreset(name="tiny-kontext", label="Tiny Kontext", source=str(tiny_flux_kontext), steps=2,
                          edits=True, **preset)  # fmt: skip
    presets = dataclasses.replace(
        presets, models={**presets.models, "tiny-flux": tiny, "tiny-kontext": kontext}
    )
    character = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    task = TextToImagePipeline(cache, presets)
    fox = {"prompt": "the same fox in the snow", "steps": None}  # steps: the preset's
    [drawn] = run(task, "tiny-flux", object_image=character, **fox)
    [direct] = run(task, "tiny-kontext", object_image=character, **fox)
    assert (drawn.parameters.model, drawn.parameters.steps) == ("tiny-kontext", 2), "Kontext's own defaults"
    assert np.array_equal(pixels(drawn.image), pixels(direct.image))
    [plain] = run(task, "tiny-flux", **fox)
    assert (plain.parameters.model, plain.parameters.steps) == ("tiny-flux", 3), "no reference: its own"


@pytest.fixture
def redux_presets(presets, tiny_flux, tmp_path):
    """The shipped presets with a tiny FLUX.1 Redux, and diffusers' own Redux pipeline of it reading the
    prompt with the tiny FLUX.1's text encoders, to compare with."""
    from diffusers import FluxPipeline, FluxPriorReduxPipeline

    from studio.core.presets import ReduxPreset

    redux = build_redux(tmp_path / "redux")
    preset = ReduxPreset(name="tiny-redux", family="flux", source=str(redux))
    text = from_diffusers(FluxPipeline, tiny_flux)
    encoders = {
        name: text.components[name] for name in ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
    }
    raw = FluxPriorReduxPipeline.from_pretrained(redux, **encoders)
    raw.set_progress_bar_config(disable=True)
    return dataclasses.replace(presets, redux={"flux": preset}), raw, text


def drawn_from(flux, prior) -> Image.Image:
    """diffusers' FLUX.1 pipeline given the embeddings its Redux pipeline made (`prior`)."""
    return flux(
        prompt_embeds=prior.prompt_embeds, pooled_prompt_embeds=prior.pooled_prompt_embeds,
        num_inference_steps=3, guidance_scale=3.5, height=64, width=64, generator=generator(11),
    ).images[0]  # fmt: skip


def test_a_flux_style_reference_goes_through_redux_as_diffusers_hands_its_tokens_on(
    cache, redux_presets, tiny_flux
):
    presets, redux, flux = redux_presets
    style = Image.effect_mandelbrot((48, 40), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    task = TextToImagePipeline(cache, presets)
    [made] = run(task, tiny_flux, style_images=(style,))
    assert made.parameters.extras["redux"] == "tiny-redux" and made.parameters.extras["style_references"] == 1
    prior = redux(style, prompt=plain_text(PROMPT))
    expected = drawn_from(flux, prior)
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
    [plain] = run(task, tiny_flux)
    assert not np.array_equal(pixels(plain.image), pixels(made.image)), "the reference counts"
    with pytest.raises(
        InvalidRequest, match=r"^Style codes hold an IP-Adapter's embedding, which FLUX\.1 models"
    ):
        run(task, tiny_flux, style_codes=("k3vq7m2a",))
    with pytest.raises(InvalidRequest, match=r"^FLUX\.1 models cannot take a character or object reference"):
        run(task, tiny_flux, object_image=style)


def test_a_flux_blend_mixes_its_images_redux_tokens_by_weight_as_diffusers_scales_them(
    cache, redux_presets, tiny_flux
):
    presets, redux, flux = redux_presets
    images = (Image.new("RGB", (64, 64), "teal"), Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60))
    [blended] = run(BlendPipeline(cache, presets), tiny_flux, prompt="", images=images, image_weights=(1, 3))
    prior = redux(
        [image.convert("RGB") for image in images], prompt=["", ""],
        prompt_embeds_scale=[0.25, 0.75], pooled_prompt_embeds_scale=[0.25, 0.75],
    )  # fmt: skip
    expected = drawn_from(flux, prior)
    assert np.abs(pixels(blended.image) - pixels(expected)).max() <= 2
    assert cache.stats().weight_loads == 2, "the base model and Redux, each once"


def test_flux2_klein_edits_with_the_pictures_its_instruction_names_as_its_references(
    cache, presets, tiny_flux2_klein
):
    from diffusers import Flux2KleinPipeline

    from pipelines.edit import EditPipeline

    photo = Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 60).convert("RGB")
    hat, scarf = Image.new("RGB", (64, 64), "crimson"), Image.new("RGB", (64, 64), "navy")
    instruction = "the hat from picture 2 and the scarf from picture 3 on the figure in picture 1"
    [made] = run(EditPipeline(cache, presets), tiny_flux2_klein, prompt=instruction, image=photo,
                 more_pictures=(hat, scarf))  # fmt: skip
    expected = from_diffusers(Flux2KleinPipeline, tiny_flux2_klein)(
        prompt=instruction, image=[photo, hat, scarf], num_inference_steps=3, guidance_scale=1.0, height=64,
        width=64, generator=generator(11), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(pixels(made.image) - pixels(expected)).max() <= 2
