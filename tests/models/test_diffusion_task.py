"""What every diffusion task gets from the one scaffold (pipelines/diffusion.py), checked task by task."""

import numpy as np
import pytest
import skimage.data
from PIL import Image

import pipelines.diffusion
from pipelines.diffusion import effective_steps
from pipelines.diffusion_style import DiffusionStylePipeline, DiffusionStyleRequest
from pipelines.image_to_image import ImageToImagePipeline, ImageToImageRequest
from pipelines.inpaint import InpaintPipeline, InpaintRequest
from pipelines.outpaint import OutpaintPipeline, OutpaintRequest
from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
from studio.core.history import History
from studio.core.metadata import read_parameters
from studio.core.requests import parse_request

PHOTO = Image.fromarray(skimage.data.astronaut()).resize((64, 48))
MASK = Image.new("L", (64, 48))
MASK.paste(255, (16, 8, 48, 40))
TASKS = {
    "txt2img": (TextToImagePipeline, TextToImageRequest, {}),
    "img2img": (ImageToImagePipeline, ImageToImageRequest, {"image": PHOTO, "strength": 0.5}),
    "inpaint": (InpaintPipeline, InpaintRequest, {"image": PHOTO, "mask": MASK}),
    "outpaint": (OutpaintPipeline, OutpaintRequest, {"image": PHOTO, "direction": "pan_right"}),
    "style": (DiffusionStylePipeline, DiffusionStyleRequest, {"image": PHOTO, "structure": "none"}),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_the_png_records_the_seed_each_image_was_denoised_with(
    task, cache, presets, tiny_sd, tmp_path, monkeypatch
):
    pipeline_class, request_type, inputs = TASKS[task]
    denoised_with = []
    make_generator = pipelines.diffusion.generator_for

    def recording_generator(seed):
        denoised_with.append(seed)
        return make_generator(seed)

    monkeypatch.setattr(pipelines.diffusion, "generator_for", recording_generator)
    values = {"prompt": "a lighthouse", "model": str(tiny_sd), "steps": 2, "num_images": 3, **inputs}
    pipeline = pipeline_class(cache, presets)
    grid = pipeline(parse_request(request_type, {**values, "seed": 4294967294}))
    saved = [read_parameters(History(tmp_path).save(g.image, g.parameters)) for g in grid]
    assert denoised_with == [4294967294, 4294967295, 0], "seeds s, s+1, s+2, wrapping at 2^32"
    assert [p.seed for p in saved] == denoised_with

    # Any one image made again alone, from what its PNG says, is the same image.
    [again] = pipeline(parse_request(request_type, {**values, "num_images": 1, "seed": saved[2].seed}))
    assert np.array_equal(np.asarray(again.image), np.asarray(grid[2].image))


@pytest.mark.parametrize(
    ("steps", "strength", "expected"), [(4, None, 4), (4, 0.5, 4), (4, 0.1, 10), (1, 0.3, 4)]
)
def test_enough_steps_run_that_at_least_one_denoises_at_the_strength(steps, strength, expected):
    assert effective_steps(steps, strength) == expected
