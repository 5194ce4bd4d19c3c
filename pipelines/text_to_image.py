"""Text to image: a prompt (with stacked styles) becomes a grid of 1-4 images on the cached base model.

Images are made one after another, image i with seed s+i: each can be made again alone, a grid needs no
more memory than one image, and finished images can be shown while the next one is denoising.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image
from pydantic import Field

from pipelines.common import (
    MAX_SEED,
    IsCancelled,
    Progress,
    Request,
    StepReporter,
    generator_for,
    image_seed,
    never_cancelled,
    no_progress,
    resolve_seed,
)
from studio.errors import InvalidRequest
from studio.metadata import GenerationParameters
from studio.model_cache import BaseModel, ModelCache
from studio.models import ModelSource, resolve_model
from studio.presets import Presets

MAX_PROMPT_CHARS = 4000


class TextToImageRequest(Request):
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    styles: tuple[str, ...] = ()
    model: str | None = None  # preset name, hub id, folder or .safetensors; None: the default preset
    aspect_ratio: str = "1:1"
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


class TextToImagePipeline:
    task = "txt2img"

    def __init__(self, cache: ModelCache, presets: Presets) -> None:
        self.cache = cache
        self.presets = presets

    def check_inputs(self, request: TextToImageRequest) -> ModelSource:
        if not request.prompt.strip():
            raise InvalidRequest("Type a prompt first.")
        self.presets.check_styles(list(request.styles))
        self.presets.aspect_ratio(request.aspect_ratio)
        if request.sampler is not None:
            self.presets.sampler(request.sampler)
        return resolve_model(request.model, self.presets)

    def settings_for(self, request: TextToImageRequest, source: ModelSource) -> RunSettings:
        defaults = source.preset or self.presets.other_models
        prompt, negative_prompt = self.presets.apply_styles(
            request.prompt.strip(), request.negative_prompt.strip(), list(request.styles)
        )
        return RunSettings(
            source=source,
            prompt=prompt,
            negative_prompt=negative_prompt,
            steps=request.steps or defaults.steps,
            guidance_scale=defaults.guidance_scale
            if request.guidance_scale is None
            else request.guidance_scale,
            sampler=request.sampler or defaults.sampler,
            seed=resolve_seed(request.seed),
        )

    def size_for(self, request: TextToImageRequest, base: BaseModel) -> tuple[int, int]:
        preset = base.source.preset
        resolution = preset.resolution if preset else base.native_resolution
        return self.presets.aspect_ratio(request.aspect_ratio).size_for(resolution, base.size_multiple)

    def __call__(
        self,
        request: TextToImageRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> list[GeneratedImage]:
        return list(self.generate(request, progress, is_cancelled))

    def generate(
        self,
        request: TextToImageRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> Iterator[GeneratedImage]:
        """Yield each image as soon as it is decoded; Stop raises `RunCancelled` between steps."""
        # 1. Check inputs and fill in the model preset's defaults
        source = self.check_inputs(request)
        run = self.settings_for(request, source)
        sampler = self.presets.sampler(run.sampler)
        reporter = StepReporter(progress, is_cancelled, request.num_images)
        reporter.check()

        with self.cache.gpu_lock:
            # 2. Load the base model, or reuse the one already in the cache
            base = self.cache.base_model(source)
            if base.is_inpainting:
                raise InvalidRequest(
                    f"{source.name} is an inpainting model: use it for inpainting, or pick a regular model."
                )
            width, height = self.size_for(request, base)
            with self.cache.use(base):
                # 3. A pipeline around the shared components, with this request's own scheduler
                pipe = base.build(_text_to_image_class(base.family), base.new_scheduler(sampler))

                # 4. Denoise image by image, image i with seed s+i
                for index in range(request.num_images):
                    seed = image_seed(run.seed, index)
                    reporter.image_index = index
                    output = pipe(
                        prompt=run.prompt,
                        negative_prompt=run.negative_prompt or None,
                        width=width,
                        height=height,
                        num_inference_steps=run.steps,
                        guidance_scale=run.guidance_scale,
                        generator=generator_for(seed),
                        callback_on_step_end=reporter,
                    )
                    # 5. Record everything needed to make this image again
                    yield GeneratedImage(
                        image=output.images[0],
                        parameters=GenerationParameters(
                            task=self.task,
                            prompt=run.prompt,
                            negative_prompt=run.negative_prompt,
                            steps=run.steps,
                            sampler=run.sampler,
                            guidance_scale=run.guidance_scale,
                            seed=seed,
                            width=width,
                            height=height,
                            model=source.name,
                            user_prompt=request.prompt.strip(),
                            user_negative_prompt=request.negative_prompt.strip(),
                            styles=tuple(request.styles),
                        ),
                    )


def _text_to_image_class(family: str) -> type:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
