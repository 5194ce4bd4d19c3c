"""Live previews and the fast decoder, through the text-to-image pipeline on tiny models."""

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.diffusion import enhanced_values
from pipelines.parts.decoders import approximate_rgb, wanted_decoder
from pipelines.parts.previews import PREVIEW_SHARE, PreviewImage, preview_due
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache
from studio.core.devices import DeviceConfig, resolve_device
from studio.core.errors import InvalidRequest, ModelUnavailable
from studio.core.metadata import read_parameters
from studio.core.requests import parse_request


def request(model, **values) -> TextToImageRequest:
    values = {"prompt": "a red fox in the snow", "model": str(model), "steps": 4, "seed": 42, **values}
    return parse_request(TextToImageRequest, values)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def previews_of(pipeline, req) -> list[PreviewImage]:
    return [event for kind, event in run_watched(pipeline, req) if kind == "preview"]


def run_watched(pipeline, req) -> list:
    """The run's events in order: ("preview", PreviewImage) as they are sent, ("image", GeneratedImage)."""
    events: list = []
    for result in pipeline.generate(req, preview=lambda p: events.append(("preview", p))):
        events.append(("image", result))
    return events


# -- the decisions --------------------------------------------------------------------------------------


def test_a_preview_is_due_only_within_its_share_of_the_denoising_time_and_never_after_the_last_step():
    spent = {"denoising_seconds": 10.0, "previewing_seconds": 0.0}
    assert preview_due(1, 4, **spent, cost_seconds=0.01)
    assert not preview_due(4, 4, **spent, cost_seconds=0.0), "the final decode follows the last step"
    assert preview_due(2, 4, **spent, cost_seconds=PREVIEW_SHARE * 10.0)
    assert not preview_due(2, 4, **spent, cost_seconds=PREVIEW_SHARE * 10.0 + 0.01)
    # a slow decoder (a quarter of a 10 s step) waits until five steps have paid for it
    assert not preview_due(4, 20, denoising_seconds=40.0, previewing_seconds=0.0, cost_seconds=2.5)
    assert preview_due(5, 20, denoising_seconds=50.0, previewing_seconds=0.0, cost_seconds=2.5)
    assert not preview_due(6, 20, denoising_seconds=60.0, previewing_seconds=2.5, cost_seconds=2.5)


def test_auto_decodes_fast_on_a_cpu_and_full_on_a_gpu():
    assert wanted_decoder("auto", resolve_device("cpu")) == "fast"
    gpu = DeviceConfig(torch.device("cuda"), torch.float16, "sdpa")
    assert gpu.is_accelerator and wanted_decoder("auto", gpu) == "full"
    assert wanted_decoder("full", resolve_device("cpu")) == "full"


def test_the_approximate_preview_maps_latent_channels_to_colours_with_no_weights(presets):
    preset = presets.decoder("sd")
    zeros = approximate_rgb(torch.zeros(1, 4, 8, 8), preset, (64, 64))
    assert zeros.size == (64, 64) and set(np.asarray(zeros).reshape(-1).tolist()) <= {127, 128}
    # the first latent channel pushes every colour up (its factors are all positive)
    bright = np.asarray(approximate_rgb(torch.tensor([2.0, 0, 0, 0]).view(1, 4, 1, 1), preset, (8, 8)))
    assert (bright > 170).all()
    # the fourth pushes blue down most: a blue-free yellowish tint
    tint = np.asarray(approximate_rgb(torch.tensor([0, 0, 0, 1.0]).view(1, 4, 1, 1), preset, (8, 8)))
    red, green, blue = tint[0, 0].astype(int)
    assert blue < green < red < 128


# -- previews while denoising ---------------------------------------------------------------------------


def test_previews_stream_before_each_final_image_and_never_join_the_results(
    cache, presets, tiny_sd, monkeypatch
):
    # A preview after every step but the last: whether one is due by its time share (preview_due, tested
    # on its own) depends on how fast this machine's steps are, which this test is not about.
    monkeypatch.setattr("pipelines.parts.previews.preview_due", lambda step, steps, **_: step < steps)
    req = request(tiny_sd, num_images=2, previews="approximate")
    events = run_watched(TextToImagePipeline(cache, presets), req)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "preview", "the first preview arrives before the first image is finished"
    assert kinds.count("image") == 2
    second_image_previews = kinds[kinds.index("image") + 1 : -1]
    assert "preview" in second_image_previews, "the second image is previewed too, before it is finished"
    previews = [p for kind, p in events if kind == "preview"]
    assert all(isinstance(p, PreviewImage) and p.step < p.steps == 4 for p in previews)
    assert {p.index for p in previews} == {0, 1}
    assert previews[0].image.size == (64, 64), "shown at the image's size"


def test_without_its_weights_a_taesd_preview_is_the_approximation_and_off_previews_nothing(
    cache, presets, tiny_sd
):
    pipeline = TextToImagePipeline(cache, presets)  # the shipped presets' TAESD is a hub id: not here
    events = run_watched(pipeline, request(tiny_sd, previews="taesd"))
    assert [kind for kind, _ in events].count("preview") >= 1
    assert [kind for kind, _ in run_watched(pipeline, request(tiny_sd, previews="off"))] == ["image"]


def test_previews_do_not_change_the_image(cache, presets, tiny_sd):
    pipeline = TextToImagePipeline(cache, presets)
    watched = [r for kind, r in run_watched(pipeline, request(tiny_sd, previews="taesd")) if kind == "image"]
    plain = pipeline(request(tiny_sd, previews="off"))
    assert np.array_equal(pixels(watched[0].image), pixels(plain[0].image))


def test_taesd_previews_decode_with_the_tiny_autoencoder(cache, fast_decoder_presets, tiny_sd):
    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    # Before its first preview, a decoder with weights is reckoned at a quarter of a step: it waits for
    # five steps to pay for it.
    previews = previews_of(pipeline, request(tiny_sd, previews="taesd", steps=12))
    assert previews and previews[0].image.size == (64, 64)
    approximate = previews_of(pipeline, request(tiny_sd, previews="approximate", steps=12))
    assert not np.array_equal(pixels(previews[0].image), pixels(approximate[0].image))


# -- the fast decoder -----------------------------------------------------------------------------------


def test_fast_and_full_decoding_are_recorded(cache, fast_decoder_presets, tiny_sd):
    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    fast = pipeline(request(tiny_sd, decoder="fast"))[0]
    full = pipeline(request(tiny_sd, decoder="full"))[0]
    auto = pipeline(request(tiny_sd))[0]
    assert fast.parameters.extras["decoder"] == "fast" and full.parameters.extras["decoder"] == "full"
    assert auto.parameters.extras["decoder"] == "fast", "auto on a CPU, with TAESD here"
    assert np.array_equal(pixels(auto.image), pixels(fast.image))
    assert not np.array_equal(pixels(fast.image), pixels(full.image)), "another decoder decoded it"
    assert "Decoder: fast" in fast.parameters.to_text()
    assert "Decoder: full" in full.parameters.to_text()


def test_the_full_decoder_gives_the_pixels_of_raw_diffusers(presets, tiny_sd):
    from diffusers import StableDiffusionPipeline

    on_torch = ModelCache(resolve_device("cpu"), offline=True)  # torch's own pixels, as a GPU's path has
    ours = TextToImagePipeline(on_torch, presets)(request(tiny_sd, decoder="full", sampler="Euler", steps=3))[
        0
    ]
    raw = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    image = raw(
        "a red fox in the snow",
        num_inference_steps=3,
        guidance_scale=ours.parameters.guidance_scale,
        generator=torch.Generator("cpu").manual_seed(42),
        height=64,
        width=64,
    ).images[0]
    assert np.array_equal(pixels(ours.image), pixels(image))


def test_auto_decodes_full_when_taesd_is_not_here_and_fast_says_what_is_missing(cache, presets, tiny_sd):
    pipeline = TextToImagePipeline(cache, presets)
    assert pipeline(request(tiny_sd))[0].parameters.extras["decoder"] == "full"
    with pytest.raises(ModelUnavailable, match="madebyollin/taesd.*Full decoder"):
        pipeline(request(tiny_sd, decoder="fast"))


def test_the_fast_decoder_is_one_cache_entry_shared_by_runs(cache, fast_decoder_presets, tiny_sd):
    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    pipeline(request(tiny_sd, decoder="fast", previews="taesd"))
    loads = cache.stats().weight_loads
    pipeline(request(tiny_sd, decoder="fast", previews="taesd"))
    assert cache.stats().weight_loads == loads
    assert [e.key.component for e in cache.stats().entries].count("taesd") == 1


def test_a_saved_fast_image_reads_back_its_decoder(cache, fast_decoder_presets, tiny_sd, tmp_path):
    from studio.core.metadata import save_png

    fast = TextToImagePipeline(cache, fast_decoder_presets)(request(tiny_sd, decoder="fast"))[0]
    save_png(fast.image, tmp_path / "fast.png", fast.parameters)
    with Image.open(tmp_path / "fast.png") as image:
        assert read_parameters(image).extras["decoder"] == "fast"


# -- Enhance ------------------------------------------------------------------------------------------------


def test_enhance_makes_a_fast_image_again_with_the_full_decoder(cache, fast_decoder_presets, tiny_sd):
    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    values = {"prompt": "a red fox, snow, dusk", "model": str(tiny_sd), "steps": 3, "seed": 7}
    grid = pipeline(parse_request(TextToImageRequest, {**values, "num_images": 3, "chaos": 60}))
    second = grid[1]
    again = enhanced_values(values | {"num_images": 3, "chaos": 60}, second.parameters, fast_decoder_presets)
    assert again["decoder"] == "full" and again["num_images"] == 1 and again["seed"] == second.parameters.seed
    enhanced = pipeline(parse_request(TextToImageRequest, again))[0]
    full = pipeline(parse_request(TextToImageRequest, again | {"decoder": "fast"}))[0]
    assert np.array_equal(pixels(full.image), pixels(second.image)), "the very image, under its own chaos"
    assert enhanced.parameters.extras["decoder"] == "full"
    assert enhanced.parameters.user_prompt == second.parameters.user_prompt


def test_enhance_re_renders_a_full_draft_with_its_presets_fuller_model(presets):
    from studio.core.metadata import GenerationParameters

    draft = GenerationParameters(
        "txt2img", "a fox", "", 4, "Euler a", 0.0, 5, 512, 512, "sdxl-turbo", extras={"decoder": "full"}
    )
    again = enhanced_values({"prompt": "a fox", "model": "sdxl-turbo"}, draft, presets)
    assert again["model"] == presets.models["sdxl-turbo"].enhance_model == "sdxl"
    assert again["steps"] is None and again["guidance_scale"] is None, "the fuller model's own defaults"
    plain = GenerationParameters("txt2img", "a fox", "", 25, "Euler", 7.0, 5, 512, 512, "sd-1.5")
    with pytest.raises(InvalidRequest, match="nothing to enhance"):
        enhanced_values({"prompt": "a fox"}, plain, presets)


def test_a_model_whose_own_autoencoder_is_tiny_decodes_with_it_and_takes_an_input_image(
    cache, presets, tiny_sd, tmp_path
):
    """SDXS ships TAESD as its VAE: "full" has no fuller decoder to give, and image to image encodes
    through it."""
    from diffusers import AutoencoderTiny, StableDiffusionPipeline

    from pipelines.image_to_image import ImageToImagePipeline, ImageToImageRequest
    from tests.tiny_models import build_tiny_autoencoder

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    pipe.vae = AutoencoderTiny.from_pretrained(build_tiny_autoencoder(tmp_path / "taesd"))
    pipe.save_pretrained(tmp_path / "sdxs-like")
    made = TextToImagePipeline(cache, presets)(request(tmp_path / "sdxs-like", decoder="full"))[0]
    assert made.image.size == (64, 64) and made.parameters.extras["decoder"] == "fast"
    values = {"image": made.image, "prompt": "a fox", "model": str(tmp_path / "sdxs-like"), "steps": 4}
    varied = ImageToImagePipeline(cache, presets)(parse_request(ImageToImageRequest, values))[0]
    assert varied.image.size == (64, 64)


# -- 16-channel latents (FLUX.1, SD 3.5, Z-Image, Qwen-Image): the linear map alone, no tiny autoencoder -----


def test_a_sixteen_channel_family_previews_by_its_map_and_decodes_with_its_vae(
    cache, fast_decoder_presets, tiny_sd3, monkeypatch
):
    monkeypatch.setattr("pipelines.parts.previews.preview_due", lambda step, steps, **_: step < steps)
    pipeline = TextToImagePipeline(cache, fast_decoder_presets)
    for mode in ("approximate", "taesd"):  # no tiny autoencoder for SD 3.5 here: the map either way
        events = run_watched(pipeline, request(tiny_sd3, previews=mode, steps=3))
        previews = [event for kind, event in events if kind == "preview"]
        [image] = [event for kind, event in events if kind == "image"]
        assert [p.step for p in previews] == [1, 2] and previews[0].image.size == image.image.size
        assert image.parameters.extras["decoder"] == "full"
    with pytest.raises(InvalidRequest, match="no fast decoder for SD 3.5"):
        pipeline(request(tiny_sd3, decoder="fast"))


def test_a_model_whose_latents_the_map_was_not_made_for_shows_no_previews(
    cache, fast_decoder_presets, tiny_flux, monkeypatch
):
    """The tiny FLUX.1 has 1 latent channel, not 16: its images are made, with no previews."""
    monkeypatch.setattr("pipelines.parts.previews.preview_due", lambda step, steps, **_: step < steps)
    events = run_watched(TextToImagePipeline(cache, fast_decoder_presets), request(tiny_flux, steps=2))
    assert [kind for kind, _ in events] == ["image"]


def test_qwen_image_previews_its_packed_latents_by_wan_21s_map(
    cache, fast_decoder_presets, tmp_path, monkeypatch
):
    """Qwen-Image's autoencoder is Wan 2.1's (16 channels, named z_dim): its packed latents are unpacked and
    mapped; a preview is the size of the image, and a picture, not noise of one colour."""
    import dataclasses

    from studio.core.presets import ModelPreset
    from tests.tiny_models import build_qwen_image

    model = build_qwen_image(tmp_path / "tiny-qwen-16", channels=16)
    preset = ModelPreset(name="qwen-16", label="Qwen 16", source=str(model), family="qwen", resolution=256,
                         steps=3, guidance_scale=1.0, sampler="Euler")  # fmt: skip
    presets = dataclasses.replace(
        fast_decoder_presets, models={**fast_decoder_presets.models, "qwen-16": preset}
    )
    monkeypatch.setattr("pipelines.parts.previews.preview_due", lambda step, steps, **_: step < steps)
    events = run_watched(TextToImagePipeline(cache, presets), request("qwen-16", steps=3))
    previews = [event for kind, event in events if kind == "preview"]
    [image] = [event for kind, event in events if kind == "image"]
    assert [p.step for p in previews] == [1, 2] and previews[0].image.size == image.image.size == (256, 256)
    assert pixels(previews[-1].image).std() > 1, "the map's colours vary across the picture"


def test_packed_latents_are_unpacked_as_flux_packs_them():
    from diffusers import FluxPipeline

    from pipelines.parts.previews import unpacked

    latents = torch.randn(1, 16, 12, 20)
    packed = FluxPipeline._pack_latents(latents, 1, 16, 12, 20)
    assert torch.equal(unpacked(packed, (160, 96), 8), latents)


def test_a_flow_samplers_preview_shows_its_estimate_of_the_finished_latents():
    """x_t = (1 - σ) x0 + σ noise and the model predicts noise - x0: the watch recovers x0 at each step."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from pipelines.parts.previews import X0Watch

    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(4)
    watch = X0Watch(scheduler, flow=True)
    x0, noise = torch.randn(1, 16, 8, 8), torch.randn(1, 16, 8, 8)
    sample = noise.clone()
    for timestep in scheduler.timesteps[:2]:
        sample = scheduler.step(noise - x0, timestep, sample, return_dict=False)[0]
        torch.testing.assert_close(watch.latest, x0, atol=1e-5, rtol=1e-5)
