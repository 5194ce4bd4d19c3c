"""What the diffusion tasks share: the prompt-side request fields, filling in defaults, recording parameters.

Text to image, image to image, inpaint and outpaint all take a prompt with stacked styles, a model, a seed
and the sampling settings; each task module adds its own fields and steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image
from pydantic import Field

from pipelines.common import MAX_SEED, Request, image_seed, resolve_seed
from studio.errors import InvalidRequest
from studio.metadata import GenerationParameters
from studio.models import ModelSource, resolve_model
from studio.presets import Presets

MAX_PROMPT_CHARS = 4000

# diffusers pipeline class names by (family, task)
PIPELINE_CLASSES = {
    ("sd", "txt2img"): "StableDiffusionPipeline",
    ("sdxl", "txt2img"): "StableDiffusionXLPipeline",
    ("sd", "img2img"): "StableDiffusionImg2ImgPipeline",
    ("sdxl", "img2img"): "StableDiffusionXLImg2ImgPipeline",
    ("sd", "inpaint"): "StableDiffusionInpaintPipeline",
    ("sdxl", "inpaint"): "StableDiffusionXLInpaintPipeline",
    ("sd", "controlnet_img2img"): "StableDiffusionControlNetImg2ImgPipeline",
    ("sdxl", "controlnet_img2img"): "StableDiffusionXLControlNetImg2ImgPipeline",
}


def pipeline_class(family: str, task: str) -> type:
    import diffusers

    return getattr(diffusers, PIPELINE_CLASSES[(family, task)])


class DiffusionRequest(Request):
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    styles: tuple[str, ...] = ()
    model: str | None = None  # preset name, hub id, folder or .safetensors; None: the default preset
    num_images: int = Field(1, ge=1, le=4)
    seed: int = Field(-1, ge=-1, le=MAX_SEED)  # -1: random
    steps: int | None = Field(None, ge=1, le=150)  # None: the model preset's
    guidance_scale: float | None = Field(None, ge=0, le=30)  # None: the model preset's
    sampler: str | None = None  # None: the model preset's


@dataclass(frozen=True)
class GeneratedImage:
    image: Image.Image
    parameters: GenerationParameters


@dataclass(frozen=True)
class RunSettings:
    """A request with every default filled in: what will actually run."""

    source: ModelSource
    prompt: str
    negative_prompt: str
    steps: int
    guidance_scale: float
    sampler: str
    seed: int


def check_prompt_side(request: DiffusionRequest, presets: Presets, *, prompt_required: bool) -> ModelSource:
    """The checks every diffusion task makes; returns where the model comes from."""
    if prompt_required and not request.prompt.strip():
        raise InvalidRequest("Type a prompt first.")
    presets.check_styles(list(request.styles))
    if request.sampler is not None:
        presets.sampler(request.sampler)
    return resolve_model(request.model, presets)


def resolve_run(request: DiffusionRequest, source: ModelSource, presets: Presets) -> RunSettings:
    defaults = source.preset or presets.other_models
    prompt, negative_prompt = presets.apply_styles(
        request.prompt.strip(), request.negative_prompt.strip(), list(request.styles)
    )
    return RunSettings(
        source=source,
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=request.steps or defaults.steps,
        guidance_scale=defaults.guidance_scale if request.guidance_scale is None else request.guidance_scale,
        sampler=request.sampler or defaults.sampler,
        seed=resolve_seed(request.seed),
    )


def record(
    task: str,
    request: DiffusionRequest,
    run: RunSettings,
    index: int,
    size: tuple[int, int],
    **extras: Any,
) -> GenerationParameters:
    """The parameters of image `index` of a run: everything needed to make it again."""
    return GenerationParameters(
        task=task,
        prompt=run.prompt,
        negative_prompt=run.negative_prompt,
        steps=run.steps,
        sampler=run.sampler,
        guidance_scale=run.guidance_scale,
        seed=image_seed(run.seed, index),
        width=size[0],
        height=size[1],
        model=run.source.name,
        user_prompt=request.prompt.strip(),
        user_negative_prompt=request.negative_prompt.strip(),
        styles=tuple(request.styles),
        extras=extras,
    )
