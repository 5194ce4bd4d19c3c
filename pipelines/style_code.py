"""Save a style as a code: 1-12 reference images (a moodboard when named) become one IP-Adapter embedding,
kept in the styles folder under a short code that `--sref CODE` reuses; or the style a PNG carries, saved
here as it came (PNG Info).

1. check the images (or the PNG's style) and the model;
2. the model's style IP-Adapter from the cache encodes each image, and the embeddings are mixed by weight;
3. the mix is saved under its code (the same style always gets the same code, on every studio).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image
from pydantic import ConfigDict, Field

from pipelines.parts.common import IsCancelled, Progress, never_cancelled, no_progress
from pipelines.parts.image_prompts import ImagePrompt, ImagePromptAdapters
from pipelines.parts.images import check_image
from pipelines.task import OneResultTask
from pipelines.text_to_image import ReferenceWeight, check_weights
from studio.core.access import Reference
from studio.core.errors import InvalidRequest
from studio.core.models import resolve_model
from studio.core.requests import Request
from studio.core.style_codes import MAX_NAME_CHARS, decode_style_chunk, encoder_name

MAX_MOODBOARD_IMAGES = 12


class StyleCodeRequest(Request):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    images: tuple[Image.Image, ...] = Field((), max_length=MAX_MOODBOARD_IMAGES)
    weights: tuple[ReferenceWeight, ...] = ()  # one per image; none given: equal
    name: str = Field("", max_length=MAX_NAME_CHARS)  # a moodboard's name
    model: str | None = None  # whose IP-Adapter encodes the images; None: the default preset
    style_chunk: str | None = None  # instead of images: the `studio-style` text of a PNG, saved as it is

    def references(self) -> list[Reference]:
        return [Reference("Model", self.model)] if self.model else []


@dataclass(frozen=True)
class SavedStyle:
    code: str
    name: str
    sources: int  # how many images are mixed into it


class StyleCodePipeline(OneResultTask):
    task = "style_code"
    request_type = StyleCodeRequest
    progress_label = "Encoding"

    def setup(self) -> None:
        if self.style_codes is None:
            raise ValueError("style codes are saved to a styles folder: build this task with one")
        self.codes = self.style_codes
        self.adapters = ImagePromptAdapters(self.cache, self.presets, self.style_codes)

    def check_inputs(self, request: StyleCodeRequest) -> tuple[Image.Image, ...]:
        if request.style_chunk is not None:
            return ()
        if not request.images:
            raise InvalidRequest("Add at least one style image to save as a code.")
        check_weights(request.weights, len(request.images), "image")
        return tuple(check_image(image, f"style image {n}") for n, image in enumerate(request.images, 1))

    def __call__(
        self,
        request: StyleCodeRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> SavedStyle:
        # 1. Check the images (or the PNG's style) and the model
        images = self.check_inputs(request)
        if request.style_chunk is not None:
            style = decode_style_chunk(request.style_chunk)
            name = request.name.strip() or style.name
            code = self.codes.save(style.tensor, encoder=style.encoder, name=name, sources=style.sources)
            return SavedStyle(code, name, style.sources)
        source = resolve_model(request.model, self.presets)

        # 2. The model's style adapter encodes the images; their embeddings are mixed by weight
        with self.cache.lease() as lease:
            base = lease.base_model(source)
            preset = self.adapters.preset(base, "style")
            adapter = self.adapters.adapter(lease, base, preset)
            prompt = ImagePrompt("style", images, weights=request.weights)
            embedding, _ = self.adapters.embedding(adapter, prompt, seed=0)

        # 3. Saved under its code
        name = request.name.strip()
        code = self.codes.save(embedding, encoder=encoder_name(preset), name=name, sources=len(images))
        progress(1, 1)
        return SavedStyle(code, name, len(images))
