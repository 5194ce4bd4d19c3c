"""--tile, --chaos and --stylize through the text-to-image pipeline on tiny models."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from pipelines.parts.seamless import seamless
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.requests import parse_request


def request(model, **values) -> TextToImageRequest:
    values = {"prompt": "a red fox in the snow", "model": str(model), "steps": 3, "seed": 42, **values}
    return parse_request(TextToImageRequest, values)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture
def text_to_image(cache, presets) -> TextToImagePipeline:
    return TextToImagePipeline(cache, presets)


@pytest.fixture
def request_fixture(request):
    return request.getfixturevalue


@pytest.fixture(scope="module")
def sd_pipe(tiny_sd):
    return StableDiffusionPipeline.from_pretrained(tiny_sd)


def test_seamless_models_see_the_image_wrap_around_at_its_edges(sd_pipe):
    """Shifting the latents around the torus shifts the result the same way: there is no edge, so no seam.
    (The tiny UNet halves the size once and the VAE doubles it once: shifts by whole cells.)"""
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 16, 16, generator=generator)
    shift = (4, 6)
    text = torch.randn(1, 77, 32, generator=generator)

    def unet(x):
        return sd_pipe.unet(x, 500, encoder_hidden_states=text).sample

    def decode(x):
        return sd_pipe.vae.decode(x).sample

    with torch.no_grad():
        plain_unet = unet(torch.roll(latents, shift, dims=(2, 3)))
        with seamless(sd_pipe.unet, sd_pipe.vae):
            tiled_unet, rolled_unet = unet(latents), unet(torch.roll(latents, shift, dims=(2, 3)))
            tiled_image, rolled_image = decode(latents), decode(torch.roll(latents, shift, dims=(2, 3)))
        after = unet(torch.roll(latents, shift, dims=(2, 3)))
    assert torch.allclose(torch.roll(tiled_unet, shift, dims=(2, 3)), rolled_unet, atol=1e-5)
    assert torch.allclose(torch.roll(tiled_image, (8, 12), dims=(2, 3)), rolled_image, atol=1e-5)
    assert not torch.allclose(torch.roll(unet(latents), shift, dims=(2, 3)), plain_unet, atol=1e-3)
    assert torch.equal(after, plain_unet), "the shared UNet has its own padding back after the call"


def test_with_circular_padding_rolling_the_initial_latents_rolls_the_image(sd_pipe):
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(1, 4, 16, 16, generator=generator)
    embeds = torch.randn(1, 77, 32, generator=generator)

    def image(start: torch.Tensor) -> np.ndarray:
        output = sd_pipe(
            prompt_embeds=embeds, negative_prompt_embeds=torch.zeros_like(embeds), latents=start,
            num_inference_steps=3, output_type="np",
        )  # fmt: skip
        return output.images[0]

    with seamless(sd_pipe.unet, sd_pipe.vae):
        tiled, rolled = image(latents), image(torch.roll(latents, (4, 6), dims=(2, 3)))
    assert np.allclose(np.roll(tiled, (8, 12), axis=(0, 1)), rolled, atol=1e-4)
    plain, plain_rolled = image(latents), image(torch.roll(latents, (4, 6), dims=(2, 3)))
    assert not np.allclose(np.roll(plain, (8, 12), axis=(0, 1)), plain_rolled, atol=1e-2)


@pytest.mark.parametrize("family", ["tiny_sd", "tiny_sdxl"])
def test_tile_is_recorded_and_leaves_the_next_run_as_it_was(text_to_image, family, request_fixture):
    model = request_fixture(family)
    before = text_to_image(request(model))[0]
    [tiled] = text_to_image(request(model, tile=True))
    after = text_to_image(request(model))[0]
    assert tiled.parameters.extras["tile"] is True
    assert not np.array_equal(pixels(tiled.image), pixels(before.image))
    assert np.array_equal(pixels(after.image), pixels(before.image))
    assert "tile" not in before.parameters.extras


def test_chaos_varies_each_image_and_each_reproduces_alone_from_what_it_records(text_to_image, tiny_sd):
    prompt = "a red fox, in the snow, at dawn, watercolor, soft light"
    grid = text_to_image(
        request(tiny_sd, prompt=prompt, styles=("Cinematic",), num_images=4, chaos=80, guidance_scale=6)
    )
    recorded = [image.parameters for image in grid]
    drawn = {(p.user_prompt, p.styles, p.guidance_scale) for p in recorded}
    assert len(drawn) > 1, "chaos draws other settings for the images of a grid"
    assert all(p.user_prompt.startswith("a red fox,") for p in recorded), "the subject stays first"
    assert all(p.extras["chaos"] == 80 for p in recorded)
    for image, made in zip(grid, recorded, strict=True):
        again = text_to_image(
            request(
                tiny_sd,
                prompt=made.user_prompt,
                styles=made.styles,
                guidance_scale=made.guidance_scale,
                seed=made.seed,
            )
        )[0]
        assert np.array_equal(pixels(again.image), pixels(image.image))
        assert again.parameters.prompt == made.prompt
    # The same seed and chaos draw the same again.
    repeat = text_to_image(
        request(tiny_sd, prompt=prompt, styles=("Cinematic",), num_images=4, chaos=80, guidance_scale=6)
    )
    assert [p.parameters for p in repeat] == recorded


def test_chaos_zero_keeps_every_image_on_the_requests_own_settings(text_to_image, tiny_sd):
    grid = text_to_image(request(tiny_sd, prompt="a fox, snow, dawn", num_images=3, guidance_scale=6))
    assert {(g.parameters.user_prompt, g.parameters.guidance_scale) for g in grid} == {
        ("a fox, snow, dawn", 6)
    }
    assert "chaos" not in grid[0].parameters.extras


def test_stylize_weighs_the_styles_words_in_the_denoising_and_is_recorded(text_to_image, tiny_sd):
    usual = text_to_image(request(tiny_sd, styles=("Cinematic",)))[0]
    strong = text_to_image(request(tiny_sd, styles=("Cinematic",), stylize=900))[0]
    assert strong.parameters.extras["stylize"] == 900
    assert strong.parameters.prompt.startswith("(cinematic film still of:2)")
    assert strong.parameters.user_prompt == usual.parameters.user_prompt == "a red fox in the snow"
    assert not np.array_equal(pixels(strong.image), pixels(usual.image))
    assert "stylize" not in usual.parameters.extras
