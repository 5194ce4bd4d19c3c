"""Prompt weights, multi-prompts and long prompts, as the text encoders' embeddings of a diffusion call."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from PIL import Image

from pipelines.parts.conditioning import prompt_conditioning, to_compel, weighted_segments


@pytest.fixture(scope="module")
def sd_pipe(tiny_sd):
    return StableDiffusionPipeline.from_pretrained(tiny_sd)


@pytest.fixture(scope="module")
def sdxl_pipe(tiny_sdxl):
    return StableDiffusionXLPipeline.from_pretrained(tiny_sdxl)


def embeds(pipe, prompt: str, negative: str = "") -> torch.Tensor:
    with torch.no_grad():
        return prompt_conditioning(pipe, "sd", prompt, negative)["prompt_embeds"]


def test_a1111_weights_multiply_as_a1111_reads_them():
    assert weighted_segments("a (fox:1.5) in ((snow)) [fog] \\(literal\\)") == [
        ("a ", 1.0),
        ("fox", 1.5),
        (" in ", 1.0),
        ("snow", pytest.approx(1.21)),
        (" ", 1.0),
        ("fog", pytest.approx(1 / 1.1)),
        (" (literal)", 1.0),
    ]
    assert weighted_segments("((a, (b:2)))") == [("a, ", pytest.approx(1.21)), ("b", pytest.approx(2.42))]


def test_everything_but_the_weights_reaches_compel_as_text():
    assert to_compel('a-b, c. (d+:1.3) \\(e\\) "f"') == 'a-b, c. (d +)1.3 \\(e\\) \\"f\\"'
    assert to_compel("a castle::2 fog::1") == '("a castle", "fog").and(1, 0.5)'


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_a_plain_prompt_gets_exactly_diffusers_own_embeddings(family, sd_pipe, sdxl_pipe):
    pipe = sd_pipe if family == "sd" else sdxl_pipe
    prompt, negative = 'a lighthouse, at dawn. waves-crashing, "sci-fi" 3-d+', "fog"
    with torch.no_grad():
        ours = prompt_conditioning(pipe, family, prompt, negative)
        theirs = pipe.encode_prompt(
            prompt=prompt,
            negative_prompt=negative,
            device="cpu",
            **({"num_images_per_prompt": 1, "do_classifier_free_guidance": True}),
        )
    assert torch.equal(ours["prompt_embeds"], theirs[0])
    assert torch.equal(ours["negative_prompt_embeds"], theirs[1])
    if family == "sdxl":
        assert torch.equal(ours["pooled_prompt_embeds"], theirs[2])
        assert torch.equal(ours["negative_pooled_prompt_embeds"], theirs[3])


def test_sdxl_without_a_negative_prompt_gets_zeros_as_diffusers_gives(sdxl_pipe):
    with torch.no_grad():
        ours = prompt_conditioning(sdxl_pipe, "sdxl", "a lighthouse", "")
    assert not ours["negative_prompt_embeds"].any() and not ours["negative_pooled_prompt_embeds"].any()


def test_a_weight_changes_the_embeddings_and_weight_one_changes_nothing(sd_pipe):
    plain = embeds(sd_pipe, "a red fox in the snow")
    assert torch.equal(embeds(sd_pipe, "a red (fox:1) in the snow"), plain)
    stronger = embeds(sd_pipe, "a red (fox:1.5) in the snow")
    assert stronger.shape == plain.shape and not torch.allclose(stronger, plain)
    assert not torch.allclose(embeds(sd_pipe, "a red ((fox)) in the snow"), plain)


def test_a_long_prompt_is_encoded_in_chunks_not_cut_off(sd_pipe):
    tokenizer = sd_pipe.tokenizer
    words = "lighthouse " * 40  # the tiny tokenizer reads letters: far past 77 tokens
    assert len(tokenizer(words).input_ids) > tokenizer.model_max_length
    long = embeds(sd_pipe, words + "at dawn")
    assert long.shape[1] > tokenizer.model_max_length
    assert not torch.equal(long, embeds(sd_pipe, words + "at dusk"))  # the end of it still counts
    # The negative prompt is padded to the same length, as the denoising call needs.
    with torch.no_grad():
        both = prompt_conditioning(sd_pipe, "sd", words, "fog")
    assert both["negative_prompt_embeds"].shape == both["prompt_embeds"].shape


def test_sdxl_pools_the_words_not_the_weights_brackets(sdxl_pipe):
    with torch.no_grad():
        weighted = prompt_conditioning(sdxl_pipe, "sdxl", "a red (fox:1.5) in [snow]", "")
        plain = prompt_conditioning(sdxl_pipe, "sdxl", "a red fox in snow", "")
    assert torch.equal(weighted["pooled_prompt_embeds"], plain["pooled_prompt_embeds"])
    assert not torch.allclose(weighted["prompt_embeds"], plain["prompt_embeds"])


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_without_guidance_no_negative_is_encoded_and_the_prompt_is_not_padded_to_it(
    family, sd_pipe, sdxl_pipe
):
    pipe = sd_pipe if family == "sd" else sdxl_pipe
    long_negative = ", ".join(["blurry", "noisy", "dull", "grey", "flat"] * 20)  # well past 77 tokens
    with torch.no_grad():
        unguided = prompt_conditioning(pipe, family, "a lighthouse", long_negative, guided=False)
        theirs = pipe.encode_prompt(prompt="a lighthouse", device="cpu", num_images_per_prompt=1,
                                    do_classifier_free_guidance=False)  # fmt: skip
    assert not any(name.startswith("negative") for name in unguided), "a call without guidance reads none"
    assert torch.equal(unguided["prompt_embeds"], theirs[0]), "one chunk, as diffusers encodes it"
    if family == "sdxl":
        assert torch.equal(unguided["pooled_prompt_embeds"], theirs[2])


def test_a_prompt_made_again_is_not_encoded_again_and_makes_the_same_pixels(
    cache, fast_decoder_presets, tiny_sd, tmp_path
):
    """New seeds and a steered run's drafts reuse the prompt's kept embeddings, which give the pixels a
    fresh encoding gives; another prompt, a LoRA (which changes the text encoder) or a run moved to torch
    (whose encoder rounds otherwise) encodes again."""
    from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest
    from studio.core.requests import parse_request
    from tests.tiny_models import build_lora

    build_lora(tiny_sd, tmp_path / "detail.safetensors", seed=3, text_encoders=True)
    pipeline = TextToImagePipeline(cache, fast_decoder_presets, loras_dir=tmp_path)
    values = {"prompt": "a lighthouse", "model": str(tiny_sd), "steps": 2, "seed": 4}

    def made(**changes):
        return pipeline(parse_request(TextToImageRequest, values | changes))[0]

    first = made()
    again = made(seed=5)
    assert pipeline.prompts.encoded == 1
    fresh = TextToImagePipeline(cache, fast_decoder_presets, loras_dir=tmp_path)
    [expected] = fresh(parse_request(TextToImageRequest, values | {"seed": 5}))
    assert np.array_equal(np.asarray(again.image), np.asarray(expected.image))
    made(prompt="a lighthouse at dusk")
    made(loras=("detail:0.8",))
    assert pipeline.prompts.encoded == 3
    style = Image.new("RGB", (64, 64), (200, 40, 40))
    moved = made(style_images=(style,))  # image prompts keep the run on torch
    assert moved.parameters.extras["backend"] == "torch" and pipeline.prompts.encoded == 4
    assert first.parameters.extras["backend"] == "openvino"
