import numpy as np
import pytest
from PIL import Image

from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.errors import InvalidRequest, ModelUnavailable, RunCancelled
from studio.core.requests import parse_request


def request(model, **values) -> TextToImageRequest:
    values = {"prompt": "a red fox in the snow", "model": str(model), "steps": 3, "seed": 42, **values}
    return parse_request(TextToImageRequest, values)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture
def text_to_image(cache, presets) -> TextToImagePipeline:
    return TextToImagePipeline(cache, presets)


@pytest.mark.parametrize("family", ["tiny_sd", "tiny_sdxl"])
def test_same_seed_same_pixels(text_to_image, family, request_fixture):
    model = request_fixture(family)
    first = text_to_image(request(model, seed=7))
    second = text_to_image(request(model, seed=7))
    other = text_to_image(request(model, seed=8))
    assert np.array_equal(pixels(first[0].image), pixels(second[0].image))
    assert not np.array_equal(pixels(first[0].image), pixels(other[0].image))


@pytest.mark.parametrize("family", ["tiny_sd", "tiny_sdxl"])
def test_image_i_of_a_grid_is_seed_plus_i_alone(text_to_image, family, request_fixture):
    model = request_fixture(family)
    grid = text_to_image(request(model, seed=100, num_images=3, sampler="Euler a"))
    assert [g.parameters.seed for g in grid] == [100, 101, 102]
    alone = text_to_image(request(model, seed=102, num_images=1, sampler="Euler a"))
    assert np.array_equal(pixels(grid[2].image), pixels(alone[0].image))
    assert not np.array_equal(pixels(grid[0].image), pixels(grid[1].image))


@pytest.fixture
def request_fixture(request):
    return request.getfixturevalue


def test_parameters_record_everything_needed_to_remake_the_image(text_to_image, tiny_sd, presets):
    [image] = text_to_image(
        request(tiny_sd, negative_prompt="fog", styles=("Watercolor",), aspect_ratio="16:9", guidance_scale=5)
    )
    params = image.parameters
    assert image.image.size == (params.width, params.height) == (88, 48)  # 64px model, multiples of 8
    assert params.extras["aspect_ratio"] == "16:9"
    assert params.prompt == presets.styles["Watercolor"].prompt.replace("{prompt}", "a red fox in the snow")
    assert params.negative_prompt.startswith("fog, ")
    assert (params.user_prompt, params.styles) == ("a red fox in the snow", ("Watercolor",))
    assert (params.steps, params.guidance_scale, params.seed, params.model) == (3, 5, 42, str(tiny_sd))
    # A folder without a preset gets the "other_models" defaults from models.json.
    assert params.sampler == presets.other_models.sampler


def test_any_ratio_in_range_is_made_exactly_and_recorded_as_asked(text_to_image, tiny_sd):
    [wide] = text_to_image(request(tiny_sd, aspect_ratio="2:1"))
    [tall] = text_to_image(request(tiny_sd, aspect_ratio="1:4"))
    # The nearest rounding of each side alone would give 88×48 (11:6): the ratio wins, the area stays near.
    assert wide.image.size == (96, 48) and tall.image.size == (32, 128)
    assert (wide.parameters.extras["aspect_ratio"], tall.parameters.extras["aspect_ratio"]) == ("2:1", "1:4")
    assert 'Aspect ratio: "2:1"' in wide.parameters.to_text()  # quoted, as A1111 quotes a colon


def test_random_seed_is_recorded(text_to_image, tiny_sd):
    [image] = text_to_image(request(tiny_sd, seed=-1))
    again = text_to_image(request(tiny_sd, seed=image.parameters.seed))
    assert 0 <= image.parameters.seed < 2**32
    assert np.array_equal(pixels(image.image), pixels(again[0].image))


def test_progress_counts_every_step_of_every_image(text_to_image, tiny_sd):
    reports = []
    text_to_image(request(tiny_sd, num_images=2, steps=4), progress=lambda s, t: reports.append((s, t)))
    assert reports == [(step, 8) for step in range(1, 9)]


def test_stop_ends_the_denoising_loop_at_the_next_step(text_to_image, tiny_sd):
    reports = []
    with pytest.raises(RunCancelled):
        text_to_image(
            request(tiny_sd, num_images=4, steps=10),
            progress=lambda s, t: reports.append(s),
            is_cancelled=lambda: len(reports) >= 2,
        )
    assert reports == [1, 2], "no step ran after Stop"


def test_stop_keeps_the_images_already_finished(text_to_image, tiny_sd):
    finished = []
    with pytest.raises(RunCancelled):
        for image in text_to_image.generate(
            request(tiny_sd, num_images=3), is_cancelled=lambda: len(finished) == 1
        ):
            finished.append(image)
    assert len(finished) == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prompt": "   "}, "Type a prompt first"),
        ({"styles": ("Cinematic", "Nope")}, "Unknown style 'Nope'"),
        ({"sampler": "Fast please"}, "Unknown sampler 'Fast please'"),
        ({"aspect_ratio": "wide"}, "Aspect ratio 'wide' is not width:height"),
        ({"aspect_ratio": "5:1"}, "Aspect ratio 5:1 is too extreme: give one from 1:4 to 4:1"),
        ({"model": "/no/such/folder"}, "does not exist"),
        ({"model": "not a model"}, "Unknown model 'not a model'"),
    ],
)
def test_bad_requests_get_clear_messages(text_to_image, tiny_sd, values, message):
    with pytest.raises(InvalidRequest, match=message):
        text_to_image(request(values.pop("model", tiny_sd), **values))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": 0}, "Steps must be between 1 and 150"),
        ({"num_images": 5}, "Images \\(num_images\\) must be between 1 and 4"),
        ({"guidance_scale": 31}, "Guidance scale must be between 0 and 30"),
        ({"seed": 2**32}, "Seed must be between -1 and 4294967295"),
        ({"width": 512}, "width is not a known parameter"),
    ],
)
def test_out_of_range_values_are_rejected_before_any_work(tiny_sd, values, message):
    with pytest.raises(InvalidRequest, match=message):
        request(tiny_sd, **values)


def test_hub_model_offline_names_the_model_and_how_to_supply_it(text_to_image, cache):
    with pytest.raises(ModelUnavailable) as error:
        text_to_image(request("sdxl"))
    message = str(error.value)
    assert "stabilityai/stable-diffusion-xl-base-1.0" in message and "'sdxl'" in message
    assert "--model" in message and "hf download" in message
    assert cache.stats().loaded_sources == []


def test_pickle_checkpoints_are_refused(text_to_image, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"not loaded")
    with pytest.raises(InvalidRequest, match="pickle checkpoint"):
        text_to_image(request(checkpoint))


def test_folder_that_is_not_a_model(text_to_image, tmp_path):
    with pytest.raises(InvalidRequest, match="no model_index.json"):
        text_to_image(request(tmp_path))


@pytest.mark.parametrize("name", ["damaged.safetensors", "damaged.gguf"])
def test_broken_single_file_checkpoint(text_to_image, tmp_path, name):
    checkpoint = tmp_path / name
    checkpoint.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(
        ModelUnavailable, match=rf"^{name} could not be read as a \.\w+ checkpoint .*download it again"
    ):
        text_to_image(request(checkpoint))


def test_broken_weights_in_a_folder_fail_clearly_and_the_next_run_works(text_to_image, tiny_sd, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd, broken)
    weights = next((broken / "unet").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        text_to_image(request(broken))
    assert len(text_to_image(request(tiny_sd))) == 1


def test_inpainting_checkpoint_is_refused_for_text_to_image(text_to_image, tiny_sd_inpaint):
    with pytest.raises(InvalidRequest, match="inpainting model"):
        text_to_image(request(tiny_sd_inpaint))
