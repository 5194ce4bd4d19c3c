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
`strength`, `extras`, `image_prompts` and `finish`.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar

from PIL import Image
from pydantic import ConfigDict, Field, field_validator

from pipelines.parts.backends import openvino_refusal, use_openvino
from pipelines.parts.common import (
    MAX_SEED,
    GeneratedImage,
    IsCancelled,
    Progress,
    StepReporter,
    generator_for,
    image_seed,
    never_cancelled,
    no_progress,
    resolve_seed,
)
from pipelines.parts.conditioning import (
    PromptKey,
    PromptMemo,
    plain_text,
    prompt_conditioning,
    text_conditioning,
)
from pipelines.parts.decoders import DecoderChoice, decoder_for, fast_drafts, full_decode, tiny_autoencoder
from pipelines.parts.image_prompts import (
    ImagePrompt,
    ImagePromptAdapters,
    guided,
    resident_sight,
    takes_redux,
    taste_prompt,
)
from pipelines.parts.loras import LoraChoice, Loras, loras_applied
from pipelines.parts.loras import recorded as recorded_loras
from pipelines.parts.previews import PreviewMode, PreviewSink, live_previews, no_preview
from pipelines.parts.prompt_parameters import ReadsPromptParameters
from pipelines.parts.recording import RunSettings, record
from pipelines.parts.seamless import seamless
from pipelines.task import Task
from studio.core.access import Reference
from studio.core.cache import BaseModel, Lease
from studio.core.errors import InvalidRequest, ModelUnavailable
from studio.core.families import Family, own_sampler_owner
from studio.core.metadata import GenerationParameters
from studio.core.models import ModelSource, resolve_model
from studio.core.presets import Presets
from studio.core.requests import Request
from studio.core.taste import NO_PROFILE, Profile, Sight

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 4000


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
    stylize: int = Field(100, ge=0, le=1000)  # how much the style presets' words weigh; 100: as written

    def references(self) -> list[Reference]:
        return [Reference("Model", self.model)] if self.model else []


class GenerationRequest(DiffusionRequest):
    """The request of a task on the diffusion scaffold below: with Midjourney's controls, LoRAs, live
    previews, the choice of decoder and a taste profile's steering."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    tile: bool = False  # seamless: the image repeats without a seam
    chaos: int = Field(0, ge=0, le=100, title="Variety (chaos)")  # how much images differ beyond seeds
    loras: tuple[str, ...] = ()  # "name" or "name:weight": from the LoRA folder, a file or the hub
    ignored_parameters: tuple[str, ...] = ()  # prompt parameters this task could not honour, recorded
    previews: PreviewMode = "taesd"  # live previews while denoising: "taesd" falls back to "approximate"
    decoder: DecoderChoice = "auto"  # "fast": TAESD, "full": the model's VAE; "auto": fast on a CPU only
    # `--p CODE`: steer toward a taste profile ("default": the asker's own), each image the best of `drafts`
    profile: str | None = None
    drafts: int = Field(4, ge=2, le=8, title="Drafts per image (--p)")
    taste: Profile | None = Field(
        None, exclude=True
    )  # the profile, looked up among the asker's by the runner

    @field_validator("loras", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """The page's LoRA box (and an API caller) may give them as one string: "detail:0.8, style"."""
        return (
            tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, str)
            else value
        )

    def lora_names(self) -> list[str]:
        return [LoraChoice.parse(text).name for text in self.loras]

    def references(self) -> list[Reference]:
        named = (Reference("LoRA", name, bare_name_in_folder=True) for name in self.lora_names())
        return [*super().references(), *named]


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
    user_prompt, user_negative = request.prompt.strip(), request.negative_prompt.strip()
    prompt, negative_prompt = presets.apply_styles(
        user_prompt, user_negative, list(request.styles), weight=stylize_weight(request.stylize)
    )
    return RunSettings(
        source=source,
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=effective_steps(request.steps or defaults.steps, strength),
        guidance_scale=defaults.guidance_scale if request.guidance_scale is None else request.guidance_scale,
        sampler=request.sampler or defaults.sampler,
        seed=resolve_seed(request.seed),
        user_prompt=user_prompt,
        user_negative_prompt=user_negative,
        styles=tuple(request.styles),
        stylize=request.stylize,
    )


def family_rules_applied(
    base: BaseModel,
    request: DiffusionRequest,
    run: RunSettings,
    presets: Presets,
    *,
    prompts: list[ImagePrompt],
    strength: float | None,
) -> RunSettings:
    """Refuse what the model's family cannot do, naming it (an editing model takes a character or object
    reference as the image it edits, with no adapter; FLUX.1's Redux style references and blends); the
    family's sampling defaults for a model with no preset, and a sampler of the kind the family samples
    with (its first, where the one asked for has no such form)."""
    rules = base.rules
    if isinstance(request, GenerationRequest) and request.tile:
        rules.check("tile")
    taken = [p for p in prompts if (p.purpose == "object" and base.edits) or takes_redux(presets, base, p)]
    if len(taken) < len(prompts):
        refuse_image_prompts(rules, [p for p in prompts if p not in taken], presets.editors())
    if run.source.preset is None and rules.default_steps is not None:  # other_models' are a UNet family's
        steps = effective_steps(request.steps or rules.default_steps, strength)
        guidance = rules.default_guidance if request.guidance_scale is None else request.guidance_scale
        run = replace(run, steps=steps, guidance_scale=guidance)
    # A sampler with no flow-matching form (the page always sends one) gives way to the family's own,
    # recorded by family_extras: refusing would leave a FLUX.1 model unusable from a page set for SD.
    if rules.samplers == "own":
        return replace(run, sampler=rules.own_sampler)
    if rules.samplers == "flow" and not presets.sampler(run.sampler).flow_scheduler:
        return replace(run, sampler=presets.flow_samplers()[0])
    owner = own_sampler_owner(run.sampler)
    if owner is not None:  # a UNet family's sampler must be one made for its noise schedule
        raise InvalidRequest(
            f"{run.sampler} is {owner.label}'s own sampler: choose another for {rules.label}."
        )
    return run


def refuse_image_prompts(rules: Family, prompts: list[ImagePrompt], editors: list[str]) -> None:
    """Refuse image prompts a family cannot take, naming it; where the only one is a character or object
    reference, naming the editing models that take one too."""
    if rules.can("image_prompts"):
        return
    if editors and all(prompt.purpose == "object" for prompt in prompts):
        raise InvalidRequest(
            f"{rules.label} models cannot take a character or object reference: pick a model made for "
            f"editing, which takes it as the image it starts from ({', '.join(editors)})."
        )
    rules.check("image_prompts")


def family_extras(
    base: BaseModel, request: DiffusionRequest, run: RunSettings, extras: dict[str, Any]
) -> dict[str, Any]:
    """What the request asked that the model's family does not do (weights, a negative prompt, a sampler
    with no flow-matching form), recorded with the prompt's other ignored parameters; and the quantization
    its denoiser was loaded with, which the image depends on."""
    rules = base.rules
    recorded = {"quantization": base.quantized} if base.quantized else {}
    notes = []
    if request.sampler is not None and request.sampler != run.sampler:
        notes.append(rules.sampler_note(request.sampler))
    if not rules.can("weights") and plain_text(run.prompt) != run.prompt.strip():
        notes.append(rules.refusal("weights"))
    if not rules.can("negative_prompt") and run.negative_prompt.strip():
        notes.append(rules.refusal("negative_prompt"))
    if not notes:
        return recorded
    return {**recorded, "ignored_parameters": [*extras.get("ignored_parameters", []), *notes]}


def stylize_weight(stylize: int) -> float:
    """Midjourney's --stylize (0-1000, 100 as usual) as the weight of the style presets' own words:
    0.5 at 0, 1 at 100, 2 at 900 and above."""
    return round(min(2.0, 0.5 + 0.5 * math.sqrt(stylize / 100)), 3)


def varied(run: RunSettings, presets: Presets, seed: int, chaos: int) -> RunSettings:
    """One image's own settings under --chaos: at 0 the run's; higher, more of its guidance, the order of its
    prompt's phrases and an extra style preset are drawn at random from the image's seed, so each image
    reproduces alone from what it records."""
    if chaos == 0:
        return run
    amount, draw = chaos / 100, random.Random(seed)
    phrases = [phrase.strip() for phrase in run.user_prompt.split(",") if phrase.strip()]
    if len(phrases) > 2 and draw.random() < amount:  # the first phrase, the subject, stays first
        rest = phrases[1:]
        draw.shuffle(rest)
        phrases = [phrases[0], *rest]
    styles = list(run.styles)
    unused = [name for name in presets.styles if name not in styles]
    if unused and draw.random() < amount / 2:
        styles.append(draw.choice(unused))
    guidance = run.guidance_scale
    if guidance > 1:  # turbo models run without guidance; a little of it would change them a lot
        guidance = round(min(30.0, max(1.0, guidance * (1 + amount * draw.uniform(-0.4, 0.4)))), 2)
    user_prompt = ", ".join(phrases)
    prompt, negative_prompt = presets.apply_styles(
        user_prompt, run.user_negative_prompt, styles, weight=stylize_weight(run.stylize)
    )
    return replace(run, prompt=prompt, negative_prompt=negative_prompt, user_prompt=user_prompt,
                   styles=tuple(styles), guidance_scale=guidance)  # fmt: skip


def run_extras(request: DiffusionRequest) -> dict[str, Any]:
    """What a diffusion run records beyond its sampling settings, when it is not the usual."""
    extras: dict[str, Any] = {}
    if request.stylize != DiffusionRequest.default("stylize"):
        extras["stylize"] = request.stylize
    if isinstance(request, GenerationRequest):
        if request.tile:
            extras["tile"] = True
        if request.chaos:
            extras["chaos"] = request.chaos
        if request.ignored_parameters:
            extras["ignored_parameters"] = list(request.ignored_parameters)
        if request.taste is not None:
            extras |= {"personalize": request.taste.code, "drafts": request.drafts}
    return extras


def check_taste(request: GenerationRequest) -> None:
    """A profile is named by its code, but the task needs the profile itself, which only the studio (knowing
    who asks) looks up: a request that reaches a task without it is refused rather than made unsteered."""
    if request.profile not in (None, NO_PROFILE) and request.taste is None:
        raise InvalidRequest(
            f"The taste profile {request.profile[:20]!r} (--p) was not found among yours here: "
            "profiles are made on the studio's Personalize tab."
        )


DRAFT_SEED_STRIDE = 7_919_993  # draft j of the image with seed s has seed s + j × this: far from s + i


def draft_seed(seed: int, draft: int) -> int:
    """The seed of an image's draft `draft` (draft 0 is the image itself, as without a profile)."""
    return (seed + draft * DRAFT_SEED_STRIDE) % (MAX_SEED + 1)


def best_draft(taste: Profile, drafts: list[Image.Image], sight: Sight | None = None) -> int:
    """Which draft the profile likes best (the first of equals); by what `sight` (an image encoder in the
    cache) sees of each too, where the profile learnt from it."""
    scores = [taste.score(image, sight) for image in drafts]
    return scores.index(max(scores))


def build_pipeline(
    base: BaseModel, run: RunSettings, presets: Presets, kind: str, **replacements: Any
) -> Any:
    """A diffusers pipeline of `kind` ("txt2img", "img2img", ...) around `base`'s shared components, with
    this run's own scheduler."""
    import diffusers

    if kind == "edit":  # an editing checkpoint edits with its own pipeline
        name = base.rules.editing_pipeline(base.pipeline_class_name)
        assert name is not None, "only an editing checkpoint builds an editing pipeline (base.edits)"
    else:
        name = base.rules.pipeline_class(kind)
    pipeline_class = getattr(diffusers, name)
    return base.build(pipeline_class, base.new_scheduler(presets.sampler(run.sampler)), **replacements)


def image_size(base: BaseModel, arguments: dict[str, Any]) -> dict[str, int]:
    """The width and height of a call that starts from an image, for a family whose pipelines would
    otherwise work at their default size."""
    image = arguments.get("image")
    if not base.rules.image_calls_need_size or image is None or "width" in arguments:
        return {}
    return {"width": image.width, "height": image.height}


def call_arguments(
    conditioning: dict[str, Any], run: RunSettings, seed: int, reporter: StepReporter, rules: Family
) -> dict[str, Any]:
    """What every denoising call passes: the prompts' embeddings (`conditioning`), the sampling settings
    (the guidance by the name the family's pipelines give it), and a generator new on each call, so a
    retry after out-of-memory starts from the same noise."""
    arguments = {
        **conditioning,
        "num_inference_steps": run.steps,
        rules.guidance_argument: run.guidance_scale,
        "generator": generator_for(seed),
        "callback_on_step_end": reporter,
    }
    if rules.midpoint_at_two_steps and run.steps != 2:
        arguments["intermediate_timesteps"] = None
    return arguments


@dataclass
class Denoising:
    """How a task's run denoises, as its `prepare` sets it up."""

    pipe: Any  # the diffusers pipeline, built around the shared components
    size: tuple[int, int]  # the size the model works at, for the decode-memory estimate
    arguments: dict[str, Any] = field(default_factory=dict)  # the task's own call arguments
    extras: dict[str, Any] = field(default_factory=dict)  # recorded, known only once the models are
    calls_per_image: int = 1  # denoising calls that make one image (a tiled task: one per tile)
    size_multiple: int = 8  # what the sides of a call's image must be multiples of


RequestT = TypeVar("RequestT", bound=GenerationRequest)


class DiffusionTask(ReadsPromptParameters, Task, Generic[RequestT]):
    shows_previews = True
    backends = ("torch", "openvino")
    steered_by_taste = True
    prompt_required: ClassVar[bool] = False
    encodes_image: ClassVar[bool] = False  # starts from an image: its autoencoder's encoder runs too
    torch_only: ClassVar[str | None] = None  # why OpenVINO cannot run this task, where it cannot
    fast_decoder_everywhere: ClassVar[bool] = False  # "auto" decodes with TAESD on a GPU too

    def setup(self) -> None:
        self.loras = Loras(self.cache, self.loras_dir)
        self.adapters = ImagePromptAdapters(self.cache, self.presets, self.style_codes)
        self.prompts = PromptMemo()

    # -- what each task states -----------------------------------------------------------------------

    def check_inputs(self, request: RequestT) -> Any:
        """Check the task's own inputs (its images) and return them ready for use."""
        return None

    def model_source(self, request: RequestT, inputs: Any, source: ModelSource) -> ModelSource:
        """The model that runs: the one asked for, unless the task's inputs need another in its place."""
        return source

    def strength(self, request: RequestT, inputs: Any) -> float | None:
        """How far to move from the input image; None: no input image, the whole schedule runs."""
        return None

    def extras(self, request: RequestT, inputs: Any) -> dict[str, Any]:
        """Task-specific values to record in every image's parameters."""
        return {}

    def image_prompts(self, request: RequestT, inputs: Any) -> list[ImagePrompt]:
        """The run's image prompts (style references, a blend's images...), through IP-Adapters."""
        return []

    def prepare(
        self, lease: Lease, base: BaseModel, request: RequestT, inputs: Any, run: RunSettings
    ) -> Denoising:
        raise NotImplementedError

    def denoise(
        self, denoise_once: Callable[..., Image.Image], inputs: Any, denoising: Denoising
    ) -> Image.Image:
        """One image of the run from `denoise_once(**call arguments)`, a denoising call of the run's
        pipeline: one call as it is; a tiled task makes one per tile, with the tile as its image."""
        return denoise_once()

    def finish(self, image: Image.Image, inputs: Any) -> Image.Image:
        """The denoised image made into the result (back at the input's size, say)."""
        return image

    def unchanged(
        self, request: RequestT, inputs: Any, run: RunSettings, extras: dict
    ) -> Iterator[GeneratedImage]:
        """The input image as each result, as a run at strength 0 asks (recorded with each image's seed)."""
        for index in range(request.num_images):
            result = self.finish(inputs.image.copy(), inputs)
            yield GeneratedImage(
                result, record(self.task, run, image_seed(run.seed, index), result.size, **extras)
            )

    def with_taste(
        self,
        base: BaseModel,
        request: RequestT,
        prompts: list[ImagePrompt],
        extras: dict,
        *,
        on_openvino: bool,
    ) -> list[ImagePrompt]:
        """The run's image prompts, with its taste profile's taste embedding where the IP-Adapter for it is
        loaded (and recorded as `taste_weight`)."""
        if request.taste is None:
            return prompts
        taste = taste_prompt(self.cache, self.presets, base, request.taste, on_openvino=on_openvino,
                             prompts=len(prompts))  # fmt: skip
        if taste is None:
            return prompts
        extras["taste_weight"] = taste.scale
        return [*prompts, taste]

    def openvino_runs(self, lease: Lease, base: BaseModel, prompts: list[ImagePrompt], extras: dict) -> bool:
        """Whether OpenVINO can run this call whole; where not, torch runs it, with the reason logged and
        `Backend: torch` recorded, and the torch weights OpenVINO let go read back."""
        refusal = openvino_refusal(base, task_refusal=self.torch_only, image_prompts=bool(prompts))
        if refusal is None:
            return True
        log.info("OpenVINO cannot run this call whole (%s): torch runs it", refusal)
        extras["backend"] = "torch"
        if base.released:
            lease.read_back_weights(base)
        return False

    def draft_decoder(
        self,
        lease: Lease,
        base: BaseModel,
        request: RequestT,
        decoders: Any,
        *,
        on_openvino: bool,
        decoder: str,
    ) -> Any | None:
        """The fast decoder a steered run decodes its drafts with where the run itself decodes in full, so
        only the chosen draft gets the full VAE (None: the drafts decode as the run does). On torch: on
        OpenVINO (a CPU) the run decodes fast already unless asked not to."""
        if request.taste is None or decoder != "full" or on_openvino or decoders is None:
            return None
        try:
            return tiny_autoencoder(lease, base, decoders)
        except ModelUnavailable:
            log.info("no fast decoder for the drafts: each is decoded by the full VAE")
            return None

    def decoded_in_full(
        self,
        pipe: Any,
        base: BaseModel,
        given: list,
        inputs: Any,
        denoising: Denoising,
        *,
        tile: bool,
    ) -> Image.Image:
        """A draft decoded fast (its decodes were `given` those latents), decoded again by the full VAE and
        finished: the task's own `denoise` and `finish` put the decodes together as they did the draft's."""
        decodes = iter(given)

        def decode(latents: Any) -> Image.Image:
            with seamless(pipe.vae) if tile else nullcontext():
                return full_decode(pipe, latents, upcasts=base.family == "sdxl")

        def decode_once(**unused: Any) -> Image.Image:  # as a call's decode: tiled or offloaded as it needs
            return self.cache.denoise(base, denoising.size, partial(decode, next(decodes)), pipe=pipe)

        return self.finish(self.denoise(decode_once, inputs, denoising), inputs)

    def encode_prompts(self, pipe: Any, base: BaseModel, run: RunSettings, loras: dict[str, Any]) -> dict:
        """The prompts' embeddings for a denoising call of `pipe` (weighted, long ones chunked), with `loras`
        (as recorded) applied: kept from a recent run of the same prompts, else encoded here (run inside
        the call: the text encoders run here)."""
        guidance = guided(base, pipe, run.guidance_scale)
        if base.rules.conditioning == "text":  # the pipeline encodes them itself
            return text_conditioning(run.prompt, run.negative_prompt, base.rules.text_tokens, guided=guidance)
        key = PromptKey(
            base.source.location,
            type(pipe.text_encoder).__name__,  # torch's or OpenVINO's: their embeddings differ by rounding
            tuple(f"{key}={value}" for key, value in sorted(loras.items())),  # names, weights, file hashes
            run.prompt,
            run.negative_prompt,
            guidance,  # what decides whether the negative prompt is encoded
        )
        conditioning = self.prompts.get(key)
        if conditioning is None:
            conditioning = prompt_conditioning(
                pipe, base.family, run.prompt, run.negative_prompt, guided=guidance
            )
            self.prompts.put(key, conditioning)
        return conditioning

    # -- the scaffold ---------------------------------------------------------------------------------

    def generate(
        self,
        request: RequestT,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
        preview: PreviewSink = no_preview,
    ) -> Iterator[GeneratedImage]:
        """Yield each image as soon as it is finished, and send unfinished ones to `preview` while they
        denoise; Stop raises `RunCancelled` between steps."""
        # 1. Check inputs and fill in the model preset's defaults
        check_taste(request)
        inputs = self.check_inputs(request)
        source = self.model_source(
            request, inputs, check_prompt_side(request, self.presets, prompt_required=self.prompt_required)
        )
        loras = [LoraChoice.parse(text) for text in request.loras]
        self.loras.check(loras)
        strength = self.strength(request, inputs)
        run = resolve_run(request, source, self.presets, strength=strength)
        extras = {**self.extras(request, inputs), **run_extras(request)}
        prompts = [prompt for prompt in self.image_prompts(request, inputs) if prompt.images or prompt.codes]
        reporter = StepReporter(progress, is_cancelled, request.num_images)
        reporter.check()

        # 2. Strength 0 asks for no change: the input comes back untouched, with no model run at all
        if strength == 0:
            yield from self.unchanged(request, inputs, run, extras)
            return

        # 3. The models this run needs, pinned until it ends; the task's pipeline and call arguments;
        #    the decoder (the model's VAE, or TAESD) and the live previews
        with self.cache.lease() as lease:
            on_openvino = lease.backend == "openvino"
            base = lease.base_model(source, released_ok=on_openvino)
            run = family_rules_applied(base, request, run, self.presets, prompts=prompts, strength=strength)
            extras |= family_extras(base, request, run, extras)
            prompts = self.with_taste(base, request, prompts, extras, on_openvino=on_openvino)
            on_openvino = on_openvino and self.openvino_runs(lease, base, prompts, extras)
            denoising = self.prepare(lease, base, request, inputs, run)
            pipe = denoising.pipe
            reporter.images = request.num_images * denoising.calls_per_image
            image_prompts = self.adapters.attach(lease, base, prompts, run.seed)
            extras.update(image_prompts.extras)
            adapters = self.loras.adapters(lease, base, pipe, loras)
            lora_record = recorded_loras(adapters)
            extras.update(denoising.extras, **lora_record)
            decoders = self.presets.decoder(base.family)  # None: the family has no fast decoder here
            autoencoder, extras["decoder"] = decoder_for(
                lease, base, decoders, request.decoder, auto_is_fast=self.fast_decoder_everywhere
            )
            if autoencoder is not None:
                pipe.vae = autoencoder
            fast = self.draft_decoder(lease, base, request, decoders, on_openvino=on_openvino,
                                      decoder=extras["decoder"])  # fmt: skip
            if on_openvino:
                use_openvino(lease, base, pipe, lease.converted, tile=request.tile, adapters=adapters,
                             encodes=self.encodes_image)  # fmt: skip
                extras["backend"] = "openvino"
                adapters = []  # fused into the converted models
            reporter.previews = live_previews(
                lease, base, decoders, request.previews, preview, pipe.scheduler, denoising.size
            )

            # 4. Denoise image by image, image i with seed s+i (and, with --chaos, its own settings); with a
            #    taste profile, each image is the best of its drafts, which it records the seed of
            drafts = request.drafts if request.taste is not None else 1
            reporter.images *= drafts
            made: list[tuple[Image.Image, int, RunSettings, list]] = []  # this image's drafts so far
            for index, draft in itertools.product(range(request.num_images), range(drafts)):
                seed = draft_seed(image_seed(run.seed, index), draft)
                image_run = varied(run, self.presets, seed, request.chaos)
                per_image = denoising.calls_per_image
                first = (index * drafts + draft) * per_image
                calls = iter(range(first, first + per_image))  # for progress and previews
                given: list = []  # what a fast-decoded draft's decodes were given

                def call(
                    seed: int = seed,
                    image_run: RunSettings = image_run,
                    given: list = given,
                    **task_arguments: Any,
                ) -> Any:
                    decoding = fast_drafts(pipe.vae, fast, given) if fast is not None else nullcontext()
                    tiled = (
                        seamless(pipe.unet, pipe.vae, fast, getattr(pipe, "controlnet", None))
                        if request.tile
                        else nullcontext()
                    )
                    attached = image_prompts.applied(pipe)
                    loras_on = loras_applied(pipe, pipe.components[base.rules.denoiser], adapters)
                    with decoding, attached, tiled, loras_on:
                        conditioning = self.encode_prompts(pipe, base, image_run, lora_record)
                        arguments = call_arguments(conditioning, image_run, seed, reporter, base.rules)
                        guidance = guided(base, pipe, image_run.guidance_scale)
                        arguments = image_prompts.added_to(pipe, arguments, guidance)
                        arguments |= {**denoising.arguments, **task_arguments}
                        return pipe(**arguments, **image_size(base, arguments))

                def denoise_once(
                    call: Callable[..., Any] = call, calls: Iterator[int] = calls, **task_arguments: Any
                ) -> Image.Image:
                    reporter.begin_image(next(calls))
                    work = partial(call, **task_arguments)
                    return self.cache.denoise(base, denoising.size, work, pipe=pipe).images[0]

                # 5. The result, recorded with the seed and settings it was denoised with
                result = self.finish(self.denoise(denoise_once, inputs, denoising), inputs)
                made = [*(made if draft else []), (result, seed, image_run, given)]
                if draft < drafts - 1:
                    continue
                if request.taste is not None:
                    chosen = best_draft(request.taste, [d[0] for d in made], resident_sight(self.cache))
                    result, seed, image_run, given = made[chosen]
                    if fast is not None:  # decoded fast to choose: the chosen one is now decoded in full
                        result = self.decoded_in_full(pipe, base, given, inputs, denoising, tile=request.tile)
                parameters = record(self.task, image_run, seed, result.size, **extras)
                yield GeneratedImage(result, parameters, image_prompts.png_chunks)


def enhanced_values(values: dict[str, Any], image: GenerationParameters, presets: Presets) -> dict[str, Any]:
    """Enhance: the request `values` that made `image` (a job's), for that one image again with its own
    seed and recorded settings, decoded by the full VAE where a fast decoder made it, else re-rendered with
    its model preset's fuller model (Draft → Enhance); refused when there is neither."""
    if image.seed is None or not image.steps:
        raise InvalidRequest("This image was not denoised by a model, so there is nothing to enhance.")
    again = {
        **values,
        # What this image recorded makes it again alone: under --chaos, the settings drawn for it.
        "prompt": image.typed_prompt,
        "negative_prompt": image.typed_negative_prompt,
        "styles": image.styles,
        "guidance_scale": image.guidance_scale,
        "chaos": 0,
        "seed": image.seed,
        "num_images": 1,
        "decoder": "full",
        "profile": NO_PROFILE,  # the image's own seed, not the best of new drafts
    }
    if image.extras.get("decoder") == "fast":
        return again
    preset = presets.models.get(image.model) or presets.models.get(str(values.get("model") or ""))
    if preset is None or preset.enhance_model is None:
        raise InvalidRequest(
            "This image is already decoded by the full VAE, and its model has no fuller preset to re-render "
            "it with: nothing to enhance."
        )
    fuller = presets.models[preset.enhance_model]
    return {**again, "model": fuller.name, "steps": None, "guidance_scale": None, "sampler": None}


def refuse_inpainting_model(base: BaseModel, run: RunSettings, use_instead: str) -> None:
    if base.is_inpainting:
        raise InvalidRequest(f"{run.source.name} is an inpainting model: {use_instead}")
