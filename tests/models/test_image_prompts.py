"""Image prompts in Text to Image and Blend: style references and codes (--sref, --sw), --oref, blends."""

import random

import numpy as np
import pytest
import skimage.data
from PIL import Image

from pipelines.blend import BlendPipeline, BlendRequest
from pipelines.parts.prompt_parameters import apply_prompt_parameters
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.errors import InvalidRequest
from studio.core.history import History
from studio.core.models import resolve_model
from studio.core.requests import parse_request
from studio.core.style_codes import STYLE_CHUNK, StyleCodes, read_style
from studio.ui.runner import JobRunner


@pytest.fixture(scope="module")
def painting() -> Image.Image:
    return Image.fromarray(skimage.data.coffee()).resize((96, 64), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    return Image.fromarray(skimage.data.chelsea()).resize((80, 64), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def rocket() -> Image.Image:
    return Image.fromarray(skimage.data.rocket()).resize((64, 96), Image.Resampling.LANCZOS)


@pytest.fixture
def codes(tmp_path) -> StyleCodes:
    return StyleCodes(tmp_path / "styles")


def request_for(model, request_type=TextToImageRequest, **values):
    return parse_request(
        request_type, {"model": str(model), "prompt": "a house", "steps": 3, "seed": 5, **values}
    )


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def difference(a, b) -> float:
    return float(np.abs(pixels(a.image) - pixels(b.image)).mean())


def processor_classes(unet) -> list[str]:
    return [type(processor).__name__ for processor in unet.attn_processors.values()]


def test_style_references_reach_the_image_by_their_weights_and_the_style_weight(
    cache, tiny_presets, tiny_sd, painting, cat, codes
):
    pipeline = TextToImagePipeline(cache, tiny_presets, codes)
    plain = pipeline(request_for(tiny_sd))[0]
    styled = pipeline(request_for(tiny_sd, style_images=[painting]))[0]
    assert difference(styled, plain) > 1, "a style reference changes the picture"
    assert styled.parameters.extras["style_references"] == 1
    other = pipeline(request_for(tiny_sd, style_images=[cat]))[0]
    assert difference(other, styled) > 1, "another reference, another style"
    mixed = pipeline(request_for(tiny_sd, style_images=[painting, cat], style_image_weights=[1, 1]))[0]
    leaning = pipeline(request_for(tiny_sd, style_images=[painting, cat], style_image_weights=[3, 1]))[0]
    assert difference(mixed, leaning) > 0.1, "the weights change the mix"
    assert difference(leaning, styled) < difference(mixed, styled), "more weight on the coffee: nearer it"
    none = pipeline(request_for(tiny_sd, style_images=[painting], style_weight=0))[0]
    assert difference(none, plain) < 1, "--sw 0: the reference has no effect"
    assert none.parameters.extras["style_weight"] == 0
    strong = pipeline(request_for(tiny_sd, style_images=[painting], style_weight=400))[0]
    assert difference(strong, plain) > difference(styled, plain), "a higher --sw moves further"


def test_a_results_style_travels_in_its_png_and_its_code_makes_the_same_image(
    cache, tiny_presets, tiny_sd, painting, cat, codes, tmp_path
):
    pipeline = TextToImagePipeline(cache, tiny_presets, codes)
    result = pipeline(request_for(tiny_sd, style_images=[painting, cat], style_image_weights=[2, 1]))[0]
    saved = History(tmp_path / "outputs").save(result.image, result.parameters, png_chunks=result.png_chunks)
    style = read_style(saved)
    assert style is not None and style.code == result.parameters.extras["style_code"]
    assert style.sources == 2
    # Someone else's studio: a new styles folder, the PNG saved there as a code
    theirs = StyleCodes(tmp_path / "their-styles")
    code = theirs.save(style.tensor, encoder=style.encoder)
    assert code == style.code, "a code follows from the style, so it is the same on every studio"
    again = TextToImagePipeline(cache, tiny_presets, theirs)(request_for(tiny_sd, style_codes=[code]))[0]
    assert np.array_equal(pixels(again.image), pixels(result.image)), "the code gives the very same image"
    assert again.parameters.extras["style_codes"] == [code]


def test_sref_in_the_prompt_takes_codes_weights_and_random(
    cache, tiny_presets, tiny_sd, painting, cat, codes
):
    pipeline = TextToImagePipeline(cache, tiny_presets, codes)
    first = pipeline(request_for(tiny_sd, style_images=[painting]))[0]
    second = pipeline(request_for(tiny_sd, style_images=[cat]))[0]
    for result in (first, second):
        style = read_style_of(result)
        codes.save(style.tensor, encoder=style.encoder)
    painting_code, cat_code = first.parameters.extras["style_code"], second.parameters.extras["style_code"]

    values, notes = pipeline.read_prompt_parameters(
        {"prompt": f"a house --sref {painting_code.upper()} {cat_code}::2 at dusk --sw 250"}
    )
    assert values["prompt"] == "a house at dusk" and not notes
    assert values["style_codes"] == (painting_code, f"{cat_code}::2") and values["style_weight"] == 250
    by_prompt = pipeline(request_for(tiny_sd, **values, steps=3, seed=5))[0]
    assert by_prompt.parameters.extras["style_codes"] == [painting_code, cat_code]

    drawn = pipeline(request_for(tiny_sd, style_codes=["random"], seed=11))[0]
    picked = drawn.parameters.extras["style_codes"][0]
    assert picked == random.Random(11).choice(sorted([painting_code, cat_code])), "drawn from the seed"
    again = pipeline(request_for(tiny_sd, style_codes=["random"], seed=11))[0]
    assert np.array_equal(pixels(again.image), pixels(drawn.image)), "the same seed, the same pick"


def read_style_of(result):
    from studio.core.style_codes import decode_style_chunk

    return decode_style_chunk(result.png_chunks[STYLE_CHUNK])


def test_bad_style_references_are_refused_with_reasons(
    cache, tiny_presets, tiny_sd, tiny_sdxl, painting, codes
):
    pipeline = TextToImagePipeline(cache, tiny_presets, codes)
    with pytest.raises(InvalidRequest, match="no style code 'abcdefgh'"):
        pipeline(request_for(tiny_sd, style_codes=["abcdefgh"]))
    with pytest.raises(InvalidRequest, match="at most 3 style references"):
        pipeline(request_for(tiny_sd, style_images=[painting] * 2, style_codes=["abcdefgh", "random"]))
    with pytest.raises(InvalidRequest, match="one weight per style image"):
        pipeline(request_for(tiny_sd, style_images=[painting], style_image_weights=[1, 2]))
    with pytest.raises(InvalidRequest, match="no saved style codes"):
        pipeline(request_for(tiny_sd, style_codes=["random"]))
    with pytest.raises(InvalidRequest, match=r"--sref 'http://example.com/a.png'"):
        pipeline.read_prompt_parameters({"prompt": "a house --sref http://example.com/a.png"})
    made = pipeline(request_for(tiny_sd, style_images=[painting]))[0]
    style = read_style_of(made)
    code = codes.save(style.tensor, encoder=style.encoder)
    with pytest.raises(InvalidRequest, match="was made with the image encoder"):
        pipeline(request_for(tiny_sdxl, style_codes=[code]))
    with pytest.raises(InvalidRequest, match="keeps no style codes"):
        TextToImagePipeline(cache, tiny_presets)(request_for(tiny_sd, style_codes=[code]))


def test_an_object_reference_uses_ip_adapter_plus_beside_a_style_and_leaves_the_unet_as_it_was(
    cache, tiny_presets, tiny_sd, tiny_sdxl, painting, rocket, codes
):
    pipeline = TextToImagePipeline(cache, tiny_presets, codes)
    plain = pipeline(request_for(tiny_sd))[0]
    unet = cache.load_base_model(resolve_model(str(tiny_sd), tiny_presets)).components["unet"]
    before = processor_classes(unet)
    kept = pipeline(request_for(tiny_sd, object_image=rocket))[0]
    assert difference(kept, plain) > 1, "the object reference changes the picture"
    assert kept.parameters.extras["object_reference"] == "64x96"
    both = pipeline(request_for(tiny_sd, object_image=rocket, style_images=[painting]))[0]
    assert difference(both, kept) > 0.1, "a style reference beside it still counts"
    lighter = pipeline(request_for(tiny_sd, object_image=rocket, object_weight=10))[0]
    assert difference(lighter, plain) < difference(kept, plain), "--ow weighs it"
    assert processor_classes(unet) == before and unet.encoder_hid_proj is None
    after = pipeline(request_for(tiny_sd))[0]
    assert np.array_equal(pixels(after.image), pixels(plain.image)), "other runs see the plain UNet"
    adapters = [e for e in cache.stats().entries if e.key.component == "ip_adapter"]
    assert len(adapters) == 2 and all(e.size_bytes > 0 for e in adapters), "both adapters, counted in bytes"
    with pytest.raises(InvalidRequest, match="no IP-Adapter Plus weights for SDXL"):
        pipeline(request_for(tiny_sdxl, object_image=rocket))


def test_oref_typed_in_the_prompt_says_where_the_image_goes(tiny_presets):
    values, notes = apply_prompt_parameters(
        {"prompt": "a knight --oref knight.png --ow 300"}, TextToImageRequest, tiny_presets
    )
    assert values["object_weight"] == 300 and values["prompt"] == "a knight"
    assert notes == ["--oref knight.png takes an image here: put it under Character or object reference; it "
                     "was left out"]  # fmt: skip


def test_a_blend_mixes_two_to_five_images_by_weight(cache, tiny_presets, tiny_sd, painting, cat, rocket):
    pipeline = BlendPipeline(cache, tiny_presets)
    blend = pipeline(request_for(tiny_sd, BlendRequest, prompt="", images=[painting, cat]))[0]
    assert blend.parameters.task == "blend" and blend.parameters.extras["blended_images"] == 2
    assert blend.image.size == (64, 64), "the 1:1 aspect ratio at the tiny model's size"
    leaning = pipeline(
        request_for(tiny_sd, BlendRequest, prompt="", images=[painting, cat], image_weights=[3, 1])
    )[0]
    assert difference(leaning, blend) > 0.1, "the weights change the blend"
    three = pipeline(request_for(tiny_sd, BlendRequest, prompt="", images=[painting, cat, rocket]))[0]
    assert difference(three, blend) > 0.1
    wide = pipeline(
        request_for(tiny_sd, BlendRequest, prompt="a field", images=[painting, cat], aspect_ratio="16:9")
    )[0]
    assert wide.image.width > wide.image.height
    with pytest.raises(InvalidRequest, match="Give 2 to 5 images to blend"):
        pipeline(request_for(tiny_sd, BlendRequest, images=[painting]))
    with pytest.raises(InvalidRequest, match="one weight per image"):
        pipeline(request_for(tiny_sd, BlendRequest, images=[painting, cat], image_weights=[1]))
    with pytest.raises(InvalidRequest, match="at most 5"):
        parse_request(BlendRequest, {"images": [painting] * 6})


def test_style_images_are_size_checked_by_the_servers_limit(tiny_presets, painting):
    # Which backend runs image prompts: tests/matrix/test_feature_matrix.py
    runner = JobRunner(max_image_side=80)
    with pytest.raises(InvalidRequest, match="style images is 96×64; this studio accepts up to 80"):
        runner.check_limits(TextToImageRequest(prompt="a", style_images=(painting,)))
