import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from pipelines.diffusion_style import DiffusionStylePipeline, DiffusionStyleRequest, canny_map
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import InvalidRequest, ModelUnavailable
from studio.core.models import resolve_model
from studio.core.requests import parse_request


@pytest.fixture(scope="module")
def content() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).resize((128, 192), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def painting() -> Image.Image:
    return Image.fromarray(skimage.data.coffee()).resize((96, 64), Image.Resampling.LANCZOS)


def style_request(model, **values) -> DiffusionStyleRequest:
    return parse_request(DiffusionStyleRequest, {"model": str(model), "steps": 3, "seed": 5, **values})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_the_canny_map_is_opencvs_canny_of_the_same_image(cache, tiny_presets, tiny_sd, content):
    expected = cv2.Canny(np.asarray(content), 60, 150)
    edges = np.asarray(canny_map(content, 60, 150))
    assert edges.shape == (192, 128, 3)
    assert np.array_equal(edges[..., 0], expected)
    assert 0.02 < (expected > 0).mean() < 0.5, "a photograph has edges, not everywhere"
    request = style_request(tiny_sd, image=content, prompt="ink", canny_low=60, canny_high=150)
    structure = DiffusionStylePipeline(cache, tiny_presets).structure_map(content, request)
    assert np.array_equal(np.asarray(structure)[..., 0], expected)


@pytest.mark.parametrize("model_fixture", ["tiny_sd", "tiny_sdxl"])
def test_style_transfer_runs_with_controlnet_and_ip_adapter(
    cache, tiny_presets, content, painting, request, model_fixture
):
    model = request.getfixturevalue(model_fixture)
    pipeline = DiffusionStylePipeline(cache, tiny_presets)
    values = {"image": content, "style_image": painting, "prompt": "oil painting", "num_images": 2}
    first, second = pipeline(style_request(model, **values))
    assert first.image.size == second.image.size == content.size
    assert first.parameters.seed == 5 and second.parameters.seed == 6
    assert first.parameters.extras["structure"] == "canny"
    assert (first.parameters.extras["canny_low"], first.parameters.extras["canny_high"]) == (100, 200)
    assert first.parameters.extras["style_image"] == "96x64"
    again = pipeline(style_request(model, **{**values, "seed": 6, "num_images": 1}))[0]
    assert np.array_equal(pixels(again.image), pixels(second.image)), (
        "image i alone with seed s+i is the same"
    )
    components = {entry.key.component for entry in cache.stats().entries}
    assert {"controlnet", "ip_adapter"} <= components
    assert all(
        entry.size_bytes > 0
        for entry in cache.stats().entries
        if entry.key.component in {"controlnet", "ip_adapter"}
    )


def test_the_style_image_reaches_the_result_through_the_style_strength(
    cache, tiny_presets, tiny_sd, content, painting
):
    pipeline = DiffusionStylePipeline(cache, tiny_presets)
    base = {"image": content, "prompt": "oil painting"}
    plain = pixels(pipeline(style_request(tiny_sd, **base))[0].image)
    styled = pixels(pipeline(style_request(tiny_sd, **base, style_image=painting))[0].image)
    off = pixels(pipeline(style_request(tiny_sd, **base, style_image=painting, style_strength=0))[0].image)
    other = Image.fromarray(skimage.data.chelsea()).resize((96, 64))
    styled_other = pixels(pipeline(style_request(tiny_sd, **base, style_image=other))[0].image)
    assert np.abs(styled - plain).mean() > 1, "the style image changes the picture"
    assert np.array_equal(off, plain), "style strength 0 is no style image"
    assert np.abs(styled - styled_other).mean() > 0.5, "another painting, another result"


def test_style_transfer_shares_the_base_model_and_leaves_it_unchanged(
    cache, tiny_presets, tiny_sd, content, painting
):
    text_to_image = TextToImagePipeline(cache, tiny_presets)
    prompt = {"prompt": "a fox", "model": str(tiny_sd), "steps": 2, "seed": 3}
    before = pixels(text_to_image(parse_request(TextToImageRequest, prompt))[0].image)
    unet = cache.load_base_model(resolve_model(str(tiny_sd), tiny_presets)).components["unet"]
    processors = {name: type(p) for name, p in unet.attn_processors.items()}
    loads = cache.stats().weight_loads

    DiffusionStylePipeline(cache, tiny_presets)(style_request(tiny_sd, image=content, style_image=painting))
    assert cache.stats().weight_loads == loads + 2, "only the ControlNet and the IP-Adapter were loaded"
    assert cache.stats().loaded_sources == [str(tiny_sd)], "no second copy of the base model"
    assert {name: type(p) for name, p in unet.attn_processors.items()} == processors
    assert unet.encoder_hid_proj is None
    after = pixels(text_to_image(parse_request(TextToImageRequest, prompt))[0].image)
    assert np.array_equal(before, after), "text to image is unaffected by the IP-Adapter run"

    DiffusionStylePipeline(cache, tiny_presets)(style_request(tiny_sd, image=content, style_image=painting))
    assert cache.stats().weight_loads == loads + 2, "the second run loads nothing"


def test_structure_none_is_image_to_image_with_the_style(cache, tiny_presets, tiny_sd, content, painting):
    result = DiffusionStylePipeline(cache, tiny_presets)(
        style_request(tiny_sd, image=content, style_image=painting, structure="none")
    )[0]
    assert result.image.size == content.size
    assert "controlnet" not in {entry.key.component for entry in cache.stats().entries}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prompt": "ink"}, "Add an content image first"),
        ({"image": "content"}, "Give the style: a style image, style presets, or a prompt"),
        (
            {"image": "content", "prompt": "ink", "canny_low": 200, "canny_high": 100},
            "canny_low must be below",
        ),
        (
            {"image": "content", "prompt": "ink", "denoising_strength": 0},
            "Denoising strength must be between 0.05 and 1",
        ),
        ({"image": "content", "style_image": "huge"}, "The style image is 4000×10"),
    ],
)
def test_bad_input_is_a_clear_message(cache, tiny_presets, tiny_sd, content, values, message):
    images = {"content": content, "huge": Image.new("RGB", (4000, 10))}
    values = {
        key: images.get(value, value) if isinstance(value, str) else value for key, value in values.items()
    }
    with pytest.raises(InvalidRequest, match=message):
        DiffusionStylePipeline(cache, tiny_presets)(style_request(tiny_sd, **values))


def test_missing_controlnet_and_ip_adapter_offline_say_which_and_how(presets, tiny_sd, content, painting):
    cache = ModelCache(resolve_device("cpu"), offline=True)
    pipeline = DiffusionStylePipeline(cache, presets)  # the shipped presets name hub weights
    with pytest.raises(
        ModelUnavailable, match=r"lllyasviel/control_v11p_sd15_canny.*presets/controlnets.json"
    ):
        pipeline(style_request(tiny_sd, image=content, prompt="ink"))
    with pytest.raises(ModelUnavailable, match=r"h94/IP-Adapter.*presets/ip_adapters.json"):
        pipeline(style_request(tiny_sd, image=content, style_image=painting, structure="none"))
    with pytest.raises(ModelUnavailable, match=r"detector's weights \('lllyasviel/Annotators'\)"):
        pipeline.structure_map(
            content, style_request(tiny_sd, image=content, prompt="ink", structure="softedge")
        )
    cache.clear()


def test_a_structure_without_a_controlnet_for_the_model_is_a_clear_message(
    cache, tiny_presets, tiny_sd, content
):
    with pytest.raises(InvalidRequest, match="no Depth ControlNet for SD1 models"):
        DiffusionStylePipeline(cache, tiny_presets)(
            style_request(tiny_sd, image=content, prompt="ink", structure="depth")
        )
