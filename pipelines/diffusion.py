"""The scaffold every diffusion task shares, so each task module states only what differs.

Text to image, image to image, inpaint, outpaint and diffusion style transfer all take a prompt with stacked
styles, a model, a seed and the sampling settings, and run the same steps (`DiffusionTask.generate`):

1. check the inputs; fill in the model preset's defaults (the effective steps included);
2. strength 0 asks for no change: the input comes back, no model runs;
3. fetch the models the run needs from the cache, pinned until it ends; the task prepares its pipeline
   (built around the shared components, with this request's own scheduler) and its call arguments;
4. for each image: its seed (s + i), the denoising call, the task's finishing touch, and the parameters
   recorded with the very seed the image was denoised with.

A task module subclasses `DiffusionTask` and writes `check_inputs`, `prepare` and, where it needs them,
`strength`, `extras` and `finish`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from PIL import Image
from pydantic import Field

from pipelines.common import (
    MAX_SEED,
    IsCancelled,
    Progress,
    StepReporter,
    generator_for,
    image_seed,
    never_cancelled,
    no_progress,
    resolve_seed,
)
from pipelines.recording import record
from studio.core.cache import BaseModel, Lease, ModelCache
from studio.core.errors import InvalidRequest
from studio.core.metadata import GenerationParameters  # noqa: F401 (GeneratedImage's field)
from studio.core.models import ModelSource, resolve_model
from studio.core.presets import Presets
from studio.core.requests import Request

MAX_PROMPT_CHARS = 4000

# diffusers pipeline class names by (family, kind of pipeline)
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


class DiffusionRequest(Request):
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    styles: tuple[str, ...] = ()
    model: str | None = None  # preset name, hub id, folder or .safetensors; None: the default preset
    num_images: int = Field(1, ge=1, le=4, title="Images")
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
    prompt: str  # styles applied
    negative_prompt: str
    steps: int  # at least enough that one step runs at the task's strength
    guidance_scale: float
    sampler: str
    seed: int  # the first image's; -1 already replaced by a random seed


def check_prompt_side(request: DiffusionRequest, presets: Presets, *, prompt_required: bool) -> ModelSource:
    """The checks every diffusion task makes; returns where the model comes from."""
    if prompt_required and not request.prompt.strip():
        raise InvalidRequest("Type a prompt first.")
    presets.check_styles(list(request.styles))
    if request.sampler is not None:
        presets.sampler(request.sampler)
    return resolve_model(request.model, presets)


def effective_steps(steps: int, strength: float | None) -> int:
    """Image to image runs only steps × strength of the schedule; at least one step must run."""
    return steps if not strength else max(steps, math.ceil(1 / strength))


def resolve_run(
    request: DiffusionRequest, source: ModelSource, presets: Presets, *, strength: float | None = None
) -> RunSettings:
    """The request with the model preset's defaults (or `other_models`') for what it leaves out."""
    defaults = source.preset or presets.other_models
    prompt, negative_prompt = presets.apply_styles(
        request.prompt.strip(), request.negative_prompt.strip(), list(request.styles)
    )
    return RunSettings(
        source=source,
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=effective_steps(request.steps or defaults.steps, strength),
        guidance_scale=defaults.guidance_scale if request.guidance_scale is None else request.guidance_scale,
        sampler=request.sampler or defaults.sampler,
        seed=resolve_seed(request.seed),
    )


def build_pipeline(
    base: BaseModel, run: RunSettings, presets: Presets, kind: str, **replacements: Any
) -> Any:
    """A diffusers pipeline of `kind` ("txt2img", "img2img", ...) around `base`'s shared components, with
    this run's own scheduler."""
    import diffusers

    pipeline_class = getattr(diffusers, PIPELINE_CLASSES[(base.family, kind)])
    return base.build(pipeline_class, base.new_scheduler(presets.sampler(run.sampler)), **replacements)


def call_arguments(run: RunSettings, seed: int, reporter: StepReporter) -> dict[str, Any]:
    """What every denoising call passes; the generator is new on each call, so a retry after
    out-of-memory starts from the same noise."""
    return {
        "prompt": run.prompt,
        "negative_prompt": run.negative_prompt or None,
        "num_inference_steps": run.steps,
        "guidance_scale": run.guidance_scale,
        "generator": generator_for(seed),
        "callback_on_step_end": reporter,
    }


@dataclass
class Denoising:
    """How a task's run denoises, as its `prepare` sets it up."""

    pipe: Any  # the diffusers pipeline, built around the shared components
    size: tuple[int, int]  # the size the model works at, for the decode-memory estimate
    arguments: dict[str, Any] = field(default_factory=dict)  # the task's own call arguments
    around_call: Callable[[], AbstractContextManager] = nullcontext  # e.g. an adapter swapped in
    extras: dict[str, Any] = field(default_factory=dict)  # recorded, known only once the models are


RequestT = TypeVar("RequestT", bound=DiffusionRequest)


class DiffusionTask(Generic[RequestT]):
    task: ClassVar[str]  # what the PNG records, e.g. "txt2img"
    request_type: ClassVar[type[Request]]
    prompt_required: ClassVar[bool] = False

    def __init__(self, cache: ModelCache, presets: Presets) -> None:
        self.cache = cache
        self.presets = presets

    # -- what each task states -----------------------------------------------------------------------

    def check_inputs(self, request: RequestT) -> Any:
        """Check the task's own inputs (its images) and return them ready for use."""
        return None

    def strength(self, request: RequestT, inputs: Any) -> float | None:
        """How far to move from the input image; None: no input image, the whole schedule runs."""
        return None

    def extras(self, request: RequestT, inputs: Any) -> dict[str, Any]:
        """Task-specific values to record in every image's parameters."""
        return {}

    def prepare(
        self, lease: Lease, base: BaseModel, request: RequestT, inputs: Any, run: RunSettings
    ) -> Denoising:
        raise NotImplementedError

    def finish(self, image: Image.Image, inputs: Any) -> Image.Image:
        """The denoised image made into the result (back at the input's size, say)."""
        return image

    # -- the scaffold ---------------------------------------------------------------------------------

    def __call__(
        self, request: RequestT, progress: Progress = no_progress, is_cancelled: IsCancelled = never_cancelled
    ) -> list[GeneratedImage]:
        return list(self.generate(request, progress, is_cancelled))

    def generate(
        self, request: RequestT, progress: Progress = no_progress, is_cancelled: IsCancelled = never_cancelled
    ) -> Iterator[GeneratedImage]:
        """Yield each image as soon as it is finished; Stop raises `RunCancelled` between steps."""
        # 1. Check inputs and fill in the model preset's defaults
        inputs = self.check_inputs(request)
        source = check_prompt_side(request, self.presets, prompt_required=self.prompt_required)
        strength = self.strength(request, inputs)
        run = resolve_run(request, source, self.presets, strength=strength)
        extras = self.extras(request, inputs)
        reporter = StepReporter(progress, is_cancelled, request.num_images)
        reporter.check()

        # 2. Strength 0 asks for no change: the input comes back untouched, with no model run at all
        if strength == 0:
            for index in range(request.num_images):
                result = self.finish(inputs.image.copy(), inputs)
                seed = image_seed(run.seed, index)
                yield GeneratedImage(result, record(self.task, request, run, seed, result.size, **extras))
            return

        # 3. The models this run needs, pinned until it ends; the task's pipeline and call arguments
        with self.cache.lease() as lease:
            base = lease.base_model(source)
            denoising = self.prepare(lease, base, request, inputs, run)
            extras.update(denoising.extras)

            # 4. Denoise image by image, image i with seed s+i, one at a time on the GPU
            for index in range(request.num_images):
                seed = image_seed(run.seed, index)
                reporter.image_index = index

                def call(seed: int = seed) -> Any:
                    with denoising.around_call():
                        return denoising.pipe(**call_arguments(run, seed, reporter), **denoising.arguments)

                output = self.cache.denoise(base, denoising.size, call, pipe=denoising.pipe)
                # 5. The result, recorded with the seed it was denoised with
                result = self.finish(output.images[0], inputs)
                yield GeneratedImage(result, record(self.task, request, run, seed, result.size, **extras))


def refuse_inpainting_model(base: BaseModel, run: RunSettings, use_instead: str) -> None:
    if base.is_inpainting:
        raise InvalidRequest(f"{run.source.name} is an inpainting model: {use_instead}")
