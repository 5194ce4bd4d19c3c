import json
import shutil
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

from pipelines.describe import DescribePipeline, DescribeRequest, Description, as_prompt, prompt_key
from studio.core.cache import ModelCache
from studio.core.cache.registry import module_bytes
from studio.core.devices import resolve_device
from studio.core.errors import InvalidRequest, ModelUnavailable, PresetError, RunCancelled
from studio.core.memory import MemoryBudget
from studio.core.presets import Presets, load_presets
from studio.core.requests import parse_request
from studio.core.settings import DEFAULT_PRESETS_DIR
from tests.tiny_models import build_captioner, write_captioner_presets


@pytest.fixture(scope="module")
def tiny_captioner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_captioner(tmp_path_factory.mktemp("models") / "tiny-blip")


def copied_presets(folder: Path) -> Path:
    for preset_file in DEFAULT_PRESETS_DIR.glob("*.json"):
        shutil.copy(preset_file, folder)
    return folder


@pytest.fixture(scope="module")
def captioner_presets(tiny_captioner: Path, tmp_path_factory: pytest.TempPathFactory) -> Presets:
    """The shipped presets, every captioner preset pointing at the tiny captioner."""
    return load_presets(
        write_captioner_presets(copied_presets(tmp_path_factory.mktemp("presets")), tiny_captioner)
    )


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).resize((128, 192), Image.Resampling.LANCZOS)


def describe_request(**values) -> DescribeRequest:
    return parse_request(DescribeRequest, values)


def captioner_entries(cache: ModelCache) -> list:
    return [entry for entry in cache.stats().entries if entry.key.component == "captioner"]


def test_four_distinct_suggestions_that_read_as_prompts(cache, captioner_presets, photo):
    pipeline = DescribePipeline(cache, captioner_presets)
    reports = []
    description = pipeline(
        describe_request(image=photo), progress=lambda done, total: reports.append((done, total))
    )
    assert len(description.prompts) == 4
    assert all(
        isinstance(prompt, str) and prompt.strip() == prompt and prompt for prompt in description.prompts
    )
    assert len({prompt_key(prompt) for prompt in description.prompts}) == 4, (
        "distinct beyond articles and case"
    )
    assert description.prompts[1].startswith("a photograph of"), "the preset's first opening, continued"
    assert description.captioner == "blip-base"
    assert reports[0] == (0, 4) and reports[-1] == (4, 4)

    # The image's shape, ready for Text to Image; the same image gives the same four.
    assert description.aspect_ratio == "2:3"
    assert description.typed() == [f"{prompt} --ar 2:3" for prompt in description.prompts]
    [again] = list(pipeline.generate(describe_request(image=photo)))  # the runner's shape
    assert again == description


def test_a_square_image_needs_no_aspect_ratio_flag():
    assert Description(("a cat",), "1:1", "blip-base").typed() == ["a cat"]


def test_a_local_folder_is_a_captioner_too_and_shares_the_entry(
    cache, captioner_presets, tiny_captioner, photo
):
    pipeline = DescribePipeline(cache, captioner_presets)
    by_preset = pipeline(describe_request(image=photo, captioner="blip-large"))
    loads = cache.stats().weight_loads
    by_path = pipeline(describe_request(image=photo, captioner=str(tiny_captioner)))
    assert by_path.prompts == by_preset.prompts
    assert by_path.captioner == str(tiny_captioner)
    assert cache.stats().weight_loads == loads, "the same weights, under the same key: not loaded twice"
    assert len(captioner_entries(cache)) == 1


@pytest.mark.parametrize(
    ("caption", "prompt"),
    [
        ("arafed man sitting on a bench .", "man sitting on a bench"),
        ("there is a cat ' s toy on the floor", "a cat's toy on the floor"),
        ("a close - up of a dog dog in the snow", "a close-up of a dog in the snow"),
        ("  a  red   car , parked  ", "a red car, parked"),
    ],
)
def test_captions_are_tidied_into_prompts(caption, prompt):
    assert as_prompt(caption) == prompt


def test_prompts_differing_only_in_articles_and_case_are_one():
    assert prompt_key("A cat on the sofa") == prompt_key("a cat on a sofa")
    assert prompt_key("a photograph of a cat") != prompt_key("a painting of a cat")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "Add an image first"),
        ({"image": "hello"}, "The image could not be read as a picture"),
        ({"image": "small"}, "The image is 16×16: at least 32×32 pixels are needed to describe it"),
        ({"image": "huge"}, "The image is 5000×40; the limit is 4096 pixels"),
        (
            {"image": "photo", "captioner": "nope"},
            "Unknown captioner 'nope'. Choose one of: blip-base, blip-large",
        ),
        ({"image": "photo", "captioner": "/no/such/folder"}, "neither an existing folder nor a hub id"),
        (
            {"image": "photo", "max_tokens": 500},
            r"Longest suggestion, in tokens \(max_tokens\) must be between 8",
        ),
    ],
)
def test_bad_input_is_a_clear_message(cache, captioner_presets, photo, values, message):
    images = {"photo": photo, "small": Image.new("RGB", (16, 16)), "huge": Image.new("RGB", (5000, 40))}
    values = {key: images.get(value, value) if key == "image" else value for key, value in values.items()}
    with pytest.raises(InvalidRequest, match=message):
        DescribePipeline(cache, captioner_presets)(describe_request(**values))
    assert not captioner_entries(cache), "nothing is loaded for a refused request"


def test_the_captioner_is_a_cache_entry_counted_in_bytes_and_let_go_when_idle(
    cache, captioner_presets, photo
):
    pipeline = DescribePipeline(cache, captioner_presets)
    pipeline(describe_request(image=photo))
    [entry] = captioner_entries(cache)
    assert entry.size_bytes == module_bytes(entry.value.model) > 0
    assert entry.device == str(cache.device_config.device)
    [model] = [m for m in cache.memory_report()["models"] if m["name"] == entry.unit]
    assert model["bytes"] == entry.size_bytes and not model["in_use"], "released when the run ended"

    assert cache.free_idle() >= entry.size_bytes
    assert not captioner_entries(cache)
    loads = cache.stats().weight_loads
    pipeline(describe_request(image=photo))
    assert cache.stats().weight_loads == loads + 1, "read again after it was let go"


def test_an_idle_captioner_is_evicted_when_another_needs_the_room(
    captioner_presets, tiny_captioner, photo, tmp_path
):
    other = build_captioner(tmp_path / "other-blip", seed=6)
    probe = ModelCache(resolve_device("cpu"), offline=True)
    DescribePipeline(probe, captioner_presets)(describe_request(image=photo))
    one = captioner_entries(probe)[0].size_bytes
    probe.clear()

    cache = ModelCache(resolve_device("cpu"), offline=True, budget=MemoryBudget(None, one * 3 // 2))
    pipeline = DescribePipeline(cache, captioner_presets)
    pipeline(describe_request(image=photo))
    pipeline(describe_request(image=photo, captioner=str(other)))
    assert [entry.key.source for entry in captioner_entries(cache)] == [str(other)], "the idle one made room"
    cache.clear()


def test_a_missing_captioner_offline_names_it_and_how_to_supply_it(presets, photo):
    cache = ModelCache(resolve_device("cpu"), offline=True)
    pipeline = DescribePipeline(cache, presets)  # the shipped presets name the hub's BLIP
    with pytest.raises(ModelUnavailable) as raised:
        pipeline(describe_request(image=photo))
    message = str(raised.value)
    assert "Captioner 'blip-base' ('Salesforce/blip-image-captioning-base') is not on this machine" in message
    assert "`hf download Salesforce/blip-image-captioning-base`" in message
    assert "presets/captioners.json (--presets to use another folder)" in message
    assert not cache.stats().entries


def test_stop_before_anything_runs_loads_nothing(cache, captioner_presets, photo):
    with pytest.raises(RunCancelled):
        DescribePipeline(cache, captioner_presets)(describe_request(image=photo), is_cancelled=lambda: True)
    assert not cache.stats().entries


def test_stop_between_captions_ends_the_run(cache, captioner_presets, photo):
    reports = []
    with pytest.raises(RunCancelled):
        DescribePipeline(cache, captioner_presets)(
            describe_request(image=photo),
            progress=lambda done, total: reports.append(done),
            is_cancelled=lambda: bool(reports) and reports[-1] >= 1,
        )
    assert reports[-1] == 1, "stopped after the first suggestion"


def test_stop_during_a_caption_ends_it_at_the_next_token(cache, captioner_presets, photo, monkeypatch):
    from transformers import BlipForConditionalGeneration

    lengths = []  # tokens of each caption written
    generate = BlipForConditionalGeneration.generate

    def measured(self, *args, **kwargs):
        output = generate(self, *args, **kwargs)
        lengths.append(output.shape[1])
        return output

    monkeypatch.setattr(BlipForConditionalGeneration, "generate", measured)
    polls = []

    def is_cancelled() -> bool:
        polls.append(None)
        return len(polls) >= 4  # two checks before the first caption, then one per token written

    with pytest.raises(RunCancelled):
        DescribePipeline(cache, captioner_presets)(
            describe_request(image=photo, max_tokens=60), is_cancelled=is_cancelled
        )
    assert lengths == [3], "the first caption stopped after its second token: [DEC] and two words"
    assert not any(entry.pins for entry in cache.stats().entries), "the captioner is released"

    lengths.clear()
    DescribePipeline(cache, captioner_presets)(describe_request(image=photo, max_tokens=60))
    assert lengths[0] > 10, "uninterrupted, the same caption runs on"


def test_a_default_captioner_that_is_not_a_preset_fails_at_start_up(tmp_path):
    folder = copied_presets(tmp_path)
    document = json.loads((folder / "captioners.json").read_text())
    (folder / "captioners.json").write_text(json.dumps({**document, "default": "blip-huge"}))
    with pytest.raises(
        PresetError, match=r"captioners.json: default 'blip-huge' is not one of the captioners"
    ):
        load_presets(folder)
