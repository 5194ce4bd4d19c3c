"""Text to image: a prompt (with stacked styles) becomes a grid of 1-4 images on the cached base model.

Images are made one after another, image i with seed s+i: each can be made again alone, a grid needs no
more memory than one image, and finished images can be shown while the next one is denoising.

Image prompts steer it too: up to three style references (images and saved style codes, each weighted;
`--sref`, `--sw`) reach the style blocks only, and a character or object reference (`--oref`, `--ow`)
every block (pipelines/parts/image_prompts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from PIL import Image
from pydantic import ConfigDict, Field

from pipelines.diffusion import (
    MAX_PROMPT_CHARS,
    Denoising,
    DiffusionTask,
    GeneratedImage,
    GenerationRequest,
    RunSettings,
    build_pipeline,
    refuse_inpainting_model,
)
from pipelines.edit import edit_arguments
from pipelines.parts.image_prompts import ImagePrompt, object_scale, style_scale
from pipelines.parts.images import check_image
from studio.core.cache import BaseModel, Lease
from studio.core.errors import InvalidRequest
from studio.core.models import ModelSource, resolve_model

__all__ = ["MAX_PROMPT_CHARS", "GeneratedImage", "TextToImagePipeline", "TextToImageRequest"]

MAX_STYLE_REFERENCES = 3  # images and codes together
REFERENCE_WEIGHTS = (0.0, 3.0)  # Midjourney's `::` weights: 1 as usual
ReferenceWeight = Annotated[float, Field(ge=REFERENCE_WEIGHTS[0], le=REFERENCE_WEIGHTS[1])]


class TextToImageRequest(GenerationRequest):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    aspect_ratio: str = "1:1"
    style_images: tuple[Image.Image, ...] = Field((), max_length=MAX_STYLE_REFERENCES)
    style_image_weights: tuple[ReferenceWeight, ...] = ()  # one per style image; none given: equal
    style_codes: tuple[str, ...] = Field((), max_length=MAX_STYLE_REFERENCES)  # "k3vq7m2a::2", "random"
    style_weight: int = Field(100, ge=0, le=1000, title="Style weight (--sw)")
    object_image: Image.Image | None = None  # a character or object to keep (IP-Adapter Plus)
    object_weight: int = Field(100, ge=0, le=1000, title="Object weight (--ow)")


def check_weights(weights: tuple[float, ...], count: int, what: str) -> None:
    """Weights are given for every image or for none (then all weigh the same)."""
    if weights and len(weights) != count:
        raise InvalidRequest(f"Give one weight per {what}: {count} images but {len(weights)} weights.")


@dataclass(frozen=True)
class ReferenceImages:
    """The image prompts' pictures, checked (upright RGB)."""

    style: tuple[Image.Image, ...] = ()
    object: Image.Image | None = None
    blend: tuple[Image.Image, ...] = ()  # a blend's images


def code_and_weight(typed: str) -> tuple[str, float]:
    """`k3vq7m2a::2` as ("k3vq7m2a", 2.0); a bare code weighs 1."""
    code, _, weight = typed.partition("::")
    try:
        value = float(weight) if weight.strip() else 1.0
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3:
        raise InvalidRequest(f"Style code {typed!r}: its weight after :: is a number from 0 to 3.")
    return code.strip(), value


class TextToImagePipeline(DiffusionTask[TextToImageRequest]):
    task = "txt2img"
    request_type = TextToImageRequest
    prompt_required = True

    def check_inputs(self, request: TextToImageRequest) -> ReferenceImages:
        self.presets.aspect_ratio(request.aspect_ratio)
        count = len(request.style_images) + len(request.style_codes)
        if count > MAX_STYLE_REFERENCES:
            raise InvalidRequest(
                f"Give at most {MAX_STYLE_REFERENCES} style references, images and codes together "
                f"(got {count})."
            )
        check_weights(request.style_image_weights, len(request.style_images), "style image")
        for code in request.style_codes:
            code_and_weight(code)
        return ReferenceImages(
            style=tuple(check_image(image, "style image") for image in request.style_images),
            object=None
            if request.object_image is None
            else check_image(request.object_image, "object image"),
        )

    def model_source(
        self, request: TextToImageRequest, inputs: ReferenceImages, source: ModelSource
    ) -> ModelSource:
        """A character or object reference is drawn by the editing model the chosen model's preset names
        (FLUX.1's Kontext), in its place, with that model's own defaults."""
        preset = source.preset
        if request.object_image is None or preset is None or preset.oref_model is None:
            return source
        return resolve_model(preset.oref_model, self.presets)

    def extras(self, request: TextToImageRequest, inputs: ReferenceImages) -> dict:
        extras: dict = {"aspect_ratio": self.presets.aspect_ratio(request.aspect_ratio).name}
        if request.style_images or request.style_codes:
            extras["style_references"] = len(request.style_images) + len(request.style_codes)
            if request.style_weight != TextToImageRequest.default("style_weight"):
                extras["style_weight"] = request.style_weight
        if request.object_image is not None:
            extras["object_reference"] = f"{request.object_image.width}x{request.object_image.height}"
            extras["object_weight"] = request.object_weight
        return extras

    def image_prompts(self, request: TextToImageRequest, inputs: ReferenceImages) -> list[ImagePrompt]:
        codes = [code_and_weight(typed) for typed in request.style_codes]
        image_weights = request.style_image_weights or (1.0,) * len(inputs.style)
        style = ImagePrompt(
            "style",
            inputs.style,
            codes=tuple(code for code, _ in codes),
            weights=(*image_weights, *(weight for _, weight in codes)),
            scale=style_scale(request.style_weight),
        )
        prompts = [style]
        if inputs.object is not None:
            prompts.append(ImagePrompt("object", (inputs.object,), scale=object_scale(request.object_weight)))
        return prompts

    def prepare(
        self,
        lease: Lease,
        base: BaseModel,
        request: TextToImageRequest,
        inputs: ReferenceImages,
        run: RunSettings,
    ) -> Denoising:
        refuse_inpainting_model(base, run, "use it for inpainting, or pick a regular model.")
        shape = self.presets.aspect_ratio(request.aspect_ratio)
        width, height = shape.size_for(base.resolution(run.source), base.size_multiple)
        if inputs.object is not None and base.edits:  # --oref as the image an editing model starts from
            pipe = build_pipeline(base, run, self.presets, "edit")
            return Denoising(pipe, (width, height), edit_arguments(base, inputs.object, (width, height)))
        pipe = build_pipeline(base, run, self.presets, "txt2img")
        return Denoising(pipe, (width, height), {"width": width, "height": height})
