import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pipelines.image_to_image import ImageToImagePipeline, ImageToImageRequest, variation_request
from pipelines.inpaint import InpaintPipeline, InpaintRequest
from pipelines.outpaint import OutpaintPipeline, OutpaintRequest, extended_canvas, outpaint_canvas
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.errors import InvalidRequest
from studio.core.metadata import GenerationParameters, save_png
from studio.core.presets import load_presets
from studio.core.requests import parse_request
from studio.core.settings import DEFAULT_PRESETS_DIR


def photo(width: int = 70, height: int = 50, seed: int = 0) -> Image.Image:
    """A smooth test picture (gradients and a disc), so resampling changes little."""
    y, x = np.mgrid[0:height, 0:width]
    red = 255 * x / width
    green = 255 * y / height
    blue = 255 * (((x - width / 2) ** 2 + (y - height / 2) ** 2) < (min(width, height) / 3) ** 2)
    return Image.fromarray(np.stack([red, green, blue], axis=-1).astype(np.uint8))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture
def image_to_image(cache, presets):
    return ImageToImagePipeline(cache, presets)


def img2img_request(model, **values):
    return parse_request(
        ImageToImageRequest,
        {"image": photo(), "prompt": "a painting", "model": str(model), "steps": 4, **values},
    )


def test_strength_zero_returns_the_input_exactly(image_to_image, tiny_sd, cache):
    [result] = image_to_image(img2img_request(tiny_sd, strength=0))
    # Tolerance: none. Strength 0 asks for no change, so no model runs and no autoencoder round trip happens.
    assert np.array_equal(pixels(result.image), pixels(photo()))
    assert result.parameters.extras["denoising_strength"] == 0
    assert cache.stats().weight_loads == 0


@pytest.mark.parametrize("family", ["tiny_sd", "tiny_sdxl"])
def test_image_to_image_keeps_the_size_and_is_reproducible(image_to_image, family, request):
    model = request.getfixturevalue(family)
    grid = image_to_image(img2img_request(model, strength=0.5, seed=9, num_images=2))
    again = image_to_image(img2img_request(model, strength=0.5, seed=10))
    assert [g.image.size for g in grid] == [(70, 50), (70, 50)], "odd sizes come back as given"
    assert [g.parameters.seed for g in grid] == [9, 10]
    assert np.array_equal(pixels(grid[1].image), pixels(again[0].image))
    assert not np.array_equal(pixels(grid[0].image), pixels(photo()))


def test_switching_between_tabs_loads_no_weights(each_backend_cache, presets, tiny_sd):
    cache = each_backend_cache
    mask = Image.new("L", (70, 50), 255)
    runs = [
        lambda: TextToImagePipeline(cache, presets)(
            parse_request(TextToImageRequest, {"prompt": "x", "model": str(tiny_sd), "steps": 2})
        ),
        lambda: ImageToImagePipeline(cache, presets)(img2img_request(tiny_sd, strength=0.5)),
        lambda: InpaintPipeline(cache, presets)(
            parse_request(InpaintRequest, {"image": photo(), "mask": mask, "model": str(tiny_sd)})
        ),
    ]
    for run in runs:  # each tab once: on OpenVINO, each converts what it alone needs (the VAE's encoder)
        run()
    unet = next(e.value for e in cache.stats().entries if e.key.component == "unet")
    loads, entries = cache.stats().weight_loads, len(cache.stats().entries)
    for run in reversed(runs):
        run()
    assert cache.stats().weight_loads == loads and len(cache.stats().entries) == entries
    assert next(e.value for e in cache.stats().entries if e.key.component == "unet") is unet
    if cache.backend == "torch":
        assert loads == 1, "one base model serves every tab"


def test_low_strength_on_few_steps_still_runs_a_step(image_to_image, tiny_sd):
    [result] = image_to_image(img2img_request(tiny_sd, strength=0.1, steps=2))
    assert result.parameters.steps == 10  # 10 × 0.1 = one denoising step


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image": None}, "Add an image first"),
        ({"image": Image.new("RGB", (3000, 100))}, "3000×100; the limit is 2048 pixels"),
        ({"image": Image.new("RGB", (4, 4))}, "at least 8×8"),
    ],
)
def test_bad_images_get_clear_messages(image_to_image, tiny_sd, values, message):
    with pytest.raises(InvalidRequest, match=message):
        image_to_image(img2img_request(tiny_sd, **values))


def test_strength_outside_zero_to_one_is_rejected(tiny_sd):
    with pytest.raises(InvalidRequest, match="Strength must be between 0 and 1"):
        img2img_request(tiny_sd, strength=1.5)


def test_transparent_areas_become_white(image_to_image, tiny_sd):
    transparent = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    [result] = image_to_image(img2img_request(tiny_sd, image=transparent, strength=0))
    assert result.image.getpixel((3, 3)) == (255, 255, 255)


# -- Vary --------------------------------------------------------------------------------------------------


def _saved(path, image, text_chunk=None, parameters=None):
    if parameters is not None:
        save_png(image, path, parameters)
    else:
        info = PngImagePlugin.PngInfo()
        if text_chunk:
            info.add_text("parameters", text_chunk)
        image.save(path, pnginfo=info)
    with Image.open(path) as opened:
        opened.load()
        return opened.copy()


def test_vary_takes_the_prompt_and_settings_our_png_carries(tmp_path):
    params = GenerationParameters(
        task="txt2img",
        prompt="styled fox",
        negative_prompt="styled fog",
        steps=7,
        sampler="Euler a",
        guidance_scale=4.5,
        seed=3,
        width=70,
        height=50,
        model="/models/x",
        user_prompt="a fox",
        user_negative_prompt="fog",
        styles=("Watercolor",),
    )
    image = _saved(tmp_path / "ours.png", photo(), parameters=params)
    values = variation_request(image, 0.35, num_images=2)
    assert values["prompt"] == "a fox" and values["negative_prompt"] == "fog"
    assert values["styles"] == ("Watercolor",) and values["model"] == "/models/x"
    assert (values["steps"], values["guidance_scale"], values["sampler"]) == (7, 4.5, "Euler a")
    assert (values["strength"], values["num_images"], values["seed"]) == (0.35, 2, -1)


def test_vary_reads_another_studios_prompt_and_a_given_prompt_wins(tmp_path):
    image = _saved(
        tmp_path / "a.png", photo(), "a castle\nNegative prompt: fog\nSteps: 20, Sampler: Euler, Seed: 1"
    )
    assert variation_request(image, 0.7)["prompt"] == "a castle"
    assert variation_request(image, 0.7, prompt="a keep")["prompt"] == "a keep"
    plain = _saved(tmp_path / "plain.png", photo())
    assert "prompt" not in variation_request(plain, 0.7)


def test_variations_are_data():
    presets = load_presets(DEFAULT_PRESETS_DIR)
    assert 0 < presets.variation("Subtle").strength < presets.variation("Strong").strength <= 1


def test_vary_runs_on_a_result(image_to_image, tiny_sd, tmp_path, presets):
    [made] = TextToImagePipeline(image_to_image.cache, presets)(
        parse_request(TextToImageRequest, {"prompt": "a fox", "model": str(tiny_sd), "steps": 3, "seed": 1})
    )
    image = _saved(tmp_path / "made.png", made.image, parameters=made.parameters)
    values = variation_request(image, presets.variation("Subtle").strength, num_images=2)
    grid = image_to_image(parse_request(ImageToImageRequest, values))
    assert len(grid) == 2 and all(g.parameters.user_prompt == "a fox" for g in grid)
    assert grid[0].parameters.extras["denoising_strength"] == presets.variation("Subtle").strength
    assert not np.array_equal(pixels(grid[0].image), pixels(made.image))


# -- Inpaint -----------------------------------------------------------------------------------------------


def square_mask(size=(70, 50), box=(25, 15, 45, 35)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def inpaint_request(model, **values):
    values = {
        "image": photo(),
        "mask": square_mask(),
        "prompt": "a cat",
        "model": str(model),
        "steps": 3,
        **values,
    }
    return parse_request(InpaintRequest, values)


@pytest.mark.parametrize("family", ["tiny_sd", "tiny_sdxl"])
def test_inpaint_keeps_every_pixel_away_from_the_mask(cache, presets, family, request):
    model = request.getfixturevalue(family)
    blur = 4
    [result] = InpaintPipeline(cache, presets)(inpaint_request(model, mask_blur=blur))
    changed = np.abs(pixels(result.image) - pixels(photo())).max(axis=-1) > 0
    far = np.ones(changed.shape, bool)
    margin = 3 * blur
    far[15 - margin : 35 + margin, 25 - margin : 45 + margin] = False
    assert not changed[far].any(), "pixels farther than 3 × mask_blur from the mask are the input's exactly"
    assert changed[15:35, 25:45].mean() > 0.9, "the masked square is repainted"
    assert result.image.size == (70, 50)


def test_inpaint_mask_problems_are_clear(cache, presets, tiny_sd):
    pipeline = InpaintPipeline(cache, presets)
    with pytest.raises(InvalidRequest, match="mask is 64×64 but the image is 70×50"):
        pipeline(inpaint_request(tiny_sd, mask=Image.new("L", (64, 64), 255)))
    with pytest.raises(InvalidRequest, match="mask is empty"):
        pipeline(inpaint_request(tiny_sd, mask=Image.new("L", (70, 50), 0)))
    with pytest.raises(InvalidRequest, match="Paint over the part"):
        pipeline(inpaint_request(tiny_sd, mask=None))


def test_painted_alpha_layer_is_the_mask(cache, presets, tiny_sd):
    layer = Image.new("RGBA", (70, 50), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (25, 15, 45, 35))
    [result] = InpaintPipeline(cache, presets)(inpaint_request(tiny_sd, mask=layer, mask_blur=0))
    changed = np.abs(pixels(result.image) - pixels(photo())).max(axis=-1) > 0
    assert changed[15:35, 25:45].all() and not changed[:10].any()


def test_preset_inpainting_checkpoint_shares_the_base_models_other_weights(inpaint_presets, tiny_sd_inpaint):
    from studio.core.cache import ModelCache
    from studio.core.devices import resolve_device

    presets = inpaint_presets
    cache = ModelCache(resolve_device("cpu"), offline=True)
    small = photo(64, 64)
    request = parse_request(
        InpaintRequest, {"image": small, "mask": square_mask((64, 64)), "prompt": "x", "model": "tiny"}
    )
    [result] = InpaintPipeline(cache, presets)(request)
    assert result.parameters.extras["inpaint_model"] == str(tiny_sd_inpaint)
    unets = [e for e in cache.stats().entries if e.key.component == "unet"]
    assert sorted(e.value.config.in_channels for e in unets) == [4, 9]
    assert len([e for e in cache.stats().entries if e.key.component == "text_encoder"]) == 1, (
        "one text encoder"
    )
    assert cache.stats().weight_loads == 2  # the base model, and the inpainting UNet alone
    InpaintPipeline(cache, presets)(request)
    assert cache.stats().weight_loads == 2


# -- Zoom out and pan --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "canvas", "offset"),
    [
        ("zoom_out_2", (140, 100), (35, 25)),
        ("zoom_out_1.5", (105, 75), (17, 12)),
        ("pan_left", (105, 50), (35, 0)),
        ("pan_right", (105, 50), (0, 0)),
        ("pan_up", (70, 75), (0, 25)),
        ("pan_down", (70, 75), (0, 0)),
    ],
)
def test_outpaint_extends_the_canvas_and_keeps_the_original_pixels(
    cache, presets, tiny_sd, direction, canvas, offset
):
    assert extended_canvas((70, 50), direction, 0.5) == (canvas, offset)
    request = parse_request(
        OutpaintRequest,
        {
            "image": photo(),
            "prompt": "a wide landscape",
            "model": str(tiny_sd),
            "steps": 3,
            "direction": direction,
        },
    )
    [result] = OutpaintPipeline(cache, presets)(request)
    assert result.image.size == canvas
    left, top = offset
    inner = pixels(result.image)[top : top + 50, left : left + 70]
    assert np.array_equal(inner, pixels(photo())), "the original is kept exactly"
    assert result.parameters.extras["outpaint"] == direction
    assert (result.parameters.width, result.parameters.height) == canvas


def test_a_small_image_zooms_out_with_its_middle_kept_whatever_the_overlap():
    small = Image.new("RGB", (24, 24), "red")
    canvas, mask = outpaint_canvas(small, (48, 48), (12, 12), overlap=16)  # more than half its side
    kept = np.asarray(mask) == 0
    assert kept[18:30, 18:30].all() and kept.sum() == 12 * 12, "its middle half is kept, the rest repainted"
    assert np.asarray(canvas)[24, 24].tolist() == [255, 0, 0]


def test_outpaint_refuses_a_canvas_past_the_limit(cache, presets, tiny_sd):
    request = parse_request(
        OutpaintRequest,
        {"image": Image.new("RGB", (2048, 1024)), "model": str(tiny_sd), "direction": "zoom_out_2"},
    )
    with pytest.raises(InvalidRequest, match="4096×2048 canvas; the limit is 3072"):
        OutpaintPipeline(cache, presets)(request)
