"""Describe (Midjourney's /describe): an image in, four prompt suggestions out, written by a captioner.

- The captioner (BLIP, named by presets/captioners.json, or a local folder) is a cache entry like any
  auxiliary model: counted in bytes, on the cache's device, evicted when idle and room is needed.
- Four different suggestions: the captioner's own best caption first, then its continuations of the
  preset's openings ("a photograph of", "a painting of"...), then its other beam-search captions, then
  samples; each tidied into a prompt as a person would type it, near-duplicates dropped.
- Deterministic: the same image gives the same four suggestions (beam search; samples from fixed seeds).
- Stop is obeyed between captions and, inside one, at the next token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from pydantic import ConfigDict, Field, field_validator
from transformers import StoppingCriteria, StoppingCriteriaList

from pipelines.parts.common import IsCancelled, Progress, never_cancelled, no_progress
from pipelines.parts.images import check_image
from pipelines.task import OneResultTask
from studio.core.access import Reference, is_bare_name
from studio.core.cache import Lease
from studio.core.cache.kinds import CAPTIONER
from studio.core.captioners import Captioner, load_captioner
from studio.core.errors import InvalidRequest, RunCancelled, StudioError
from studio.core.models import ModelSource, weights_source
from studio.core.requests import Request

SUGGESTIONS = 4
MIN_IMAGE_SIDE = 32  # below this a captioner, which sees a 384-pixel square, only describes blur
MAX_IMAGE_SIDE = 4096  # only that small square is read, so the picture may be larger than a photo
NUM_BEAMS = 4  # the plain caption's beams: its best, and three more candidates in reserve
MIN_TOKENS = 3  # a caption of one or two tokens is no prompt
SAMPLING_ROUNDS = 3  # when beams and openings give fewer than four different prompts


class DescribeRequest(Request):
    """The image to describe, and which captioner writes the suggestions."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None
    # A preset from presets/captioners.json ("": the default), a local folder, or a hub id.
    captioner: str = ""
    max_tokens: int = Field(30, ge=8, le=60, title="Longest suggestion, in tokens")

    @field_validator("image", mode="before")
    @classmethod
    def _is_a_picture(cls, image: object) -> object:
        # Said as the other image checks say it, not as pydantic's "instance of Image".
        if image is not None and not isinstance(image, Image.Image):
            raise ValueError("The image could not be read as a picture.")
        return image

    def references(self) -> list[Reference]:
        # A bare name is only ever a preset (never looked up on disk), so a shared studio may allow it.
        return [Reference("Captioner", self.captioner, bare_name_in_folder=True)]


@dataclass(frozen=True)
class Description:
    prompts: tuple[str, ...]  # distinct suggestions, the most literal first
    aspect_ratio: str  # the ratio that makes the image's shape, as `--ar` takes it
    captioner: str  # what wrote them: a preset name, a folder or a hub id

    def typed(self) -> list[str]:
        """The suggestions as Midjourney shows them, ready to run: the image's shape as `--ar W:H`
        (left out for a square, the default)."""
        width, height = self.aspect_ratio.split(":")
        suffix = "" if width == height else f" --ar {self.aspect_ratio}"
        return [prompt + suffix for prompt in self.prompts]


@dataclass(frozen=True)
class CheckedDescribe:
    image: Image.Image  # RGB
    source: ModelSource  # where the captioner's weights are
    prefixes: tuple[str, ...]  # the openings it continues


# -- from captions to prompts ------------------------------------------------------------------------------

# BLIP's known tics: "arafed"/"araffe" (a tokenization artefact of its training captions) and a leading
# "there is"; neither is anything a person types.
_ARTEFACT = re.compile(r"\bar+af+\w*\s*", re.IGNORECASE)
_LEADING_FILLER = re.compile(r"^(?:there (?:is|are)|this is|it is)\s+", re.IGNORECASE)
_REPEATED_WORD = re.compile(r"\b(\w+)(?:\s+\1\b)+", re.IGNORECASE)


def as_prompt(caption: str) -> str:
    """A caption tidied into a prompt: artefacts and filler out, WordPiece spacing undone ("close - up",
    "cat ' s"), a repeated word said once, no trailing full stop."""
    text = " ".join(caption.split())
    text = _ARTEFACT.sub("", text)
    text = _LEADING_FILLER.sub("", text)
    text = re.sub(r"\s*([-'/])\s*", r"\1", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = _REPEATED_WORD.sub(r"\1", text)
    return text.strip(" ,.;:")


def prompt_key(prompt: str) -> tuple[str, ...]:
    """What two suggestions must differ in to both be offered: their words, articles and case aside."""
    return tuple(w for w in re.findall(r"[a-z0-9]+", prompt.lower()) if w not in {"a", "an", "the"})


class _StopWhenCancelled(StoppingCriteria):
    """A transformers stopping criterion: generation ends at the next token once Stop is pressed."""

    def __init__(self, is_cancelled: IsCancelled) -> None:
        self.is_cancelled = is_cancelled

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self.is_cancelled(), dtype=torch.bool, device=input_ids.device
        )


class DescribePipeline(OneResultTask):
    task = "describe"
    request_type = DescribeRequest
    progress_label = "Describing"  # what the progress bar says, counting suggestions

    def check_inputs(self, request: DescribeRequest) -> CheckedDescribe:
        image = check_image(request.image, max_side=MAX_IMAGE_SIDE)
        if min(image.size) < MIN_IMAGE_SIDE:
            raise InvalidRequest(
                f"The image is {image.width}×{image.height}: at least {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} "
                "pixels are needed to describe it."
            )
        source, prefixes = self.captioner_source(request.captioner)
        return CheckedDescribe(image, source, prefixes)

    def captioner_source(self, reference: str) -> tuple[ModelSource, tuple[str, ...]]:
        """Where the captioner named `reference` is, and its openings (a folder or hub id takes the default
        preset's)."""
        reference = reference.strip() or self.presets.default_captioner
        preset = self.presets.captioners.get(reference)
        if preset is not None:
            return weights_source(f"Captioner {preset.name!r}", preset.source), preset.prefixes
        if is_bare_name(reference):  # never a relative path: bare names are presets only
            raise InvalidRequest(
                f"Unknown captioner {reference!r}. Choose one of: {', '.join(self.presets.captioners)}, "
                "or give a folder holding a captioner saved with save_pretrained."
            )
        default = self.presets.captioners[self.presets.default_captioner]
        return weights_source(f"Captioner {reference!r}", reference), default.prefixes

    # -- running -----------------------------------------------------------------------------------------

    def __call__(
        self,
        request: DescribeRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> Description:
        # 1. Check inputs: the image, and which captioner writes (found now, loaded in step 2)
        checked = self.check_inputs(request)
        if is_cancelled():
            raise RunCancelled()
        progress(0, SUGGESTIONS)

        with self.cache.lease() as lease:
            # 2. The captioner from the shared cache, on its device
            captioner = self.captioner(lease, checked.source)

            # 3. Candidates in order of faithfulness, each tidied; the first four different ones are kept.
            # Out of memory: the idle models make room and the captions are written again.
            prompts = self.cache.run_on_gpu(
                lambda: self._suggestions(captioner, checked, request, progress, is_cancelled)
            )

        # 4. The image's shape, for Text to Image to make the same
        aspect_ratio = self.presets.ratio_of(*checked.image.size)
        return Description(
            tuple(prompts), aspect_ratio, request.captioner.strip() or self.presets.default_captioner
        )

    def captioner(self, lease: Lease, source: ModelSource) -> Captioner:
        device_config, offline = lease.device_config, lease.offline
        return lease.model(
            CAPTIONER,
            source.location,
            lambda: load_captioner(source, device_config, offline=offline),
            module=lambda captioner: captioner.model,
        )

    def _suggestions(
        self,
        captioner: Captioner,
        checked: CheckedDescribe,
        request: DescribeRequest,
        progress: Progress,
        is_cancelled: IsCancelled,
    ) -> list[str]:
        found: dict[tuple[str, ...], str] = {}
        for caption in self._candidates(captioner, checked, request.max_tokens, is_cancelled):
            prompt = as_prompt(caption)
            key = prompt_key(prompt)
            if key and key not in found:
                found[key] = prompt
                progress(len(found), SUGGESTIONS)
                if len(found) == SUGGESTIONS:
                    break
        if not found:
            raise StudioError("The captioner found nothing to say about this image: try another one.")
        return list(found.values())

    def _candidates(
        self, captioner: Captioner, checked: CheckedDescribe, max_tokens: int, is_cancelled: IsCancelled
    ) -> Iterator[str]:
        """Captions, the most faithful first, written only as far as they are asked for."""

        def write(prefix: str | None, count: int, **options: Any) -> list[str]:
            return self._captions(
                captioner, checked.image, prefix, count, max_tokens, is_cancelled, **options
            )

        plain = write(None, NUM_BEAMS, num_beams=NUM_BEAMS)
        yield plain[0]
        for prefix in checked.prefixes:
            yield from write(prefix, 1, num_beams=NUM_BEAMS)
        yield from plain[1:]
        for seed in range(SAMPLING_ROUNDS):
            yield from write(None, SUGGESTIONS, do_sample=True, top_p=0.9, seed=seed)

    def _captions(
        self,
        captioner: Captioner,
        image: Image.Image,
        prefix: str | None,
        count: int,
        max_tokens: int,
        is_cancelled: IsCancelled,
        *,
        seed: int | None = None,
        **options: Any,
    ) -> list[str]:
        """`count` captions of `image`, each continuing `prefix` (None: from nothing)."""
        if is_cancelled():
            raise RunCancelled()
        model = captioner.model
        inputs = captioner.processor(images=image, text=prefix, return_tensors="pt").to(model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        device = model.device
        # Samples from a fixed seed, so the same image gives the same suggestions; the global generator
        # is left as it was.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            output = model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                min_new_tokens=MIN_TOKENS,
                no_repeat_ngram_size=3,  # BLIP otherwise loops: "a cat on a couch on a couch"
                num_return_sequences=count,
                stopping_criteria=StoppingCriteriaList([_StopWhenCancelled(is_cancelled)]),
                **options,
            )
        if is_cancelled():
            raise RunCancelled()
        return captioner.processor.batch_decode(output, skip_special_tokens=True)
