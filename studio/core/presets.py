"""Presets are data: models, styles, samplers, aspect ratios, ControlNets, IP-Adapters, captioners; JSON,
validated.

A malformed file fails at start-up with a message naming the file and the entry, never later in a run.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from studio.core.errors import InvalidRequest, PresetError
from studio.core.families import FAMILIES, FamilyName


class _Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LiveSettings(_Preset):
    """How Live makes this model's frames: a full model names its distilled sibling (`model`), which runs
    in its place with that sibling's own live settings; or a few-step LoRA (LCM, Hyper-SD, Lightning: a
    name in the LoRA folder, a file or a hub id, `:weight` optional) with the sampler, steps and guidance it
    wants; a one-step model only its `steps`."""

    model: str | None = None
    lora: str | None = None
    sampler: str | None = None
    steps: int | None = Field(None, ge=1, le=8)
    guidance_scale: float | None = Field(None, ge=0, le=30)


class ModelPreset(_Preset):
    name: str = Field(min_length=1)
    label: str = Field(min_length=1)
    source: str = Field(min_length=1)  # hub id, local folder, or one .safetensors or .gguf file
    # The diffusers model (hub id or folder) a single-file `source` takes its configs and other parts from;
    # left out, the one diffusers infers from the file's tensor names.
    base: str | None = None
    inpaint_source: str | None = None  # a dedicated inpainting checkpoint of the same family
    family: FamilyName
    resolution: int = Field(ge=64, le=2048)  # the side of the square the model was trained at (64: tiny)
    steps: int = Field(ge=1, le=150)
    guidance_scale: float = Field(ge=0, le=30)
    sampler: str
    enhance_model: str | None = None  # the fuller preset Enhance re-renders a draft of this model with
    live: LiveSettings | None = None  # how Live makes this model's frames
    edits: bool = False  # made for instruction editing (FLUX.1 Kontext): offered by Edit
    # The editing model (a preset here) that draws a character or object reference (--oref) in this one's
    # place, where this one's family takes none
    oref_model: str | None = None
    description: str = ""


class ModelDefaults(_Preset):
    """Steps, guidance and sampler for a model that has no preset (a folder, file or hub id)."""

    steps: int = Field(ge=1, le=150)
    guidance_scale: float = Field(ge=0, le=30)
    sampler: str


class StylePreset(_Preset):
    name: str = Field(min_length=1)
    prompt: str
    negative_prompt: str = ""

    @field_validator("prompt")
    @classmethod
    def _has_placeholder(cls, prompt: str) -> str:
        if "{prompt}" not in prompt:
            raise ValueError("prompt template must contain {prompt}")
        return prompt


class SamplerPreset(_Preset):
    name: str = Field(min_length=1)
    scheduler: str  # a diffusers scheduler class name
    options: dict = Field(default_factory=dict)  # passed to the scheduler's from_config
    # The same sampler for a family that samples by flow matching (FLUX.1), where diffusers has one.
    flow_scheduler: str | None = None
    flow_options: dict = Field(default_factory=dict)
    # What other studios call it, lower case: "dpmpp_2m karras" is ComfyUI's sampler and scheduler.
    aliases: tuple[str, ...] = ()

    @field_validator("scheduler", "flow_scheduler")
    @classmethod
    def _known_scheduler(cls, scheduler: str | None) -> str | None:
        import diffusers

        if scheduler is None:
            return None
        if not scheduler.endswith("Scheduler") or not hasattr(diffusers, scheduler):
            raise ValueError(f"diffusers has no scheduler class {scheduler!r}")
        return scheduler


class Variation(_Preset):
    """A Vary button: image to image on a result at this strength, with a new seed."""

    name: str = Field(min_length=1)
    strength: float = Field(gt=0, le=1)
    description: str = ""


ASPECT_RATIO_RANGE = (1 / 4, 4.0)  # the widest and tallest shapes made, as Midjourney's `--ar`
AREA_TOLERANCE = 0.2  # how far a size's pixel count may stray from the model's to keep the ratio exact
RATIO_TOLERANCE = 0.03  # a size this near the ratio asked is as good as exact: then the nearer area wins


def ratio_text(ratio: float) -> str:
    """4.0 as "4:1", 0.25 as "1:4"."""
    return f"{ratio:g}:1" if ratio >= 1 else f"1:{1 / ratio:g}"


RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*")  # width:height, as `--ar` takes it


def within_aspect_range(ratio: float) -> bool:
    """Whether width / height is within `ASPECT_RATIO_RANGE`."""
    return ASPECT_RATIO_RANGE[0] <= ratio <= ASPECT_RATIO_RANGE[1]


ASPECT_RATIO_RANGE_TEXT = f"{ratio_text(ASPECT_RATIO_RANGE[0])} to {ratio_text(ASPECT_RATIO_RANGE[1])}"


class AspectRatio(_Preset):
    """A preset shape, or any ratio typed as width:height within `ASPECT_RATIO_RANGE`."""

    name: str = Field(min_length=1)
    width: float = Field(gt=0)
    height: float = Field(gt=0)

    @model_validator(mode="after")
    def _within_range(self) -> AspectRatio:
        if not within_aspect_range(self.width / self.height):
            raise ValueError(f"{self.name} is outside {ASPECT_RATIO_RANGE_TEXT}")
        return self

    @classmethod
    def parse(cls, text: str) -> AspectRatio:
        """ "2:1", "2.39:1", "21:9" as a shape; a plain message for anything else."""
        typed = RATIO.fullmatch(text)
        if typed is None or float(typed[1]) <= 0 or float(typed[2]) <= 0:
            raise InvalidRequest(
                f"Aspect ratio {text!r} is not width:height. Give one such as 2:1, "
                f"from {ASPECT_RATIO_RANGE_TEXT}."
            )
        width, height = float(typed[1]), float(typed[2])
        name = f"{width:g}:{height:g}"
        if not within_aspect_range(width / height):
            raise InvalidRequest(
                f"Aspect ratio {name} is too extreme: give one from {ASPECT_RATIO_RANGE_TEXT}."
            )
        return cls(name=name, width=width, height=height)

    def size_for(self, resolution: int, multiple: int) -> tuple[int, int]:
        """Width and height, each a multiple of `multiple`, as near this ratio as sides allow (within
        `RATIO_TOLERANCE`, the nearer pixel count) while the pixel count stays within `AREA_TOLERANCE` of
        resolution²: at small sizes the nearest rounding of each side alone would bend 2:1 into 11:6."""
        ratio, area = self.width / self.height, resolution**2
        ideal = resolution / math.sqrt(ratio) / multiple  # the height, in multiples
        candidates = []
        for rows in range(max(1, math.floor(ideal) - 3), math.ceil(ideal) + 4):
            height = rows * multiple
            columns = height * ratio / multiple
            for width in range(
                max(1, math.floor(columns) - 1) * multiple, (math.ceil(columns) + 2) * multiple, multiple
            ):
                ratio_error = abs(math.log(width / height / ratio))
                area_error = abs(math.log(width * height / area))
                too_far = area_error > math.log1p(AREA_TOLERANCE)
                near_enough = max(ratio_error, math.log1p(RATIO_TOLERANCE))
                candidates.append((too_far, near_enough, area_error, width, height))
        *_, width, height = min(candidates)
        return width, height


Architecture = Literal["sd1", "sd2", "sdxl"]  # what adapter weights must match, beyond the family
Structure = Literal["canny", "softedge", "lineart", "depth"]


class ControlNetPreset(_Preset):
    """The ControlNet that holds one kind of structure map for one architecture."""

    name: str = Field(min_length=1)
    architecture: Architecture
    structure: Structure
    source: str = Field(min_length=1)  # hub id or local diffusers folder


class IPAdapterPreset(_Preset):
    """An IP-Adapter and its image encoder.

    A "style" adapter (one per architecture) takes style references, which reach `style_blocks` only
    (InstantStyle), and blends, which reach every block; an "object" adapter (IP-Adapter Plus, optional)
    takes a character or object reference (`--oref`), which reaches every block."""

    name: str = Field(min_length=1)
    architecture: Architecture
    purpose: Literal["style", "object"] = "style"
    source: str = Field(min_length=1)  # hub id or local folder holding `weight` and `image_encoder`
    weight: str = Field(pattern=r"\.safetensors$")  # pickles are not loaded
    image_encoder: str = Field(min_length=1)  # folder of a CLIPVisionModelWithProjection, within source
    style_blocks: tuple[str, ...] = ()  # attention-processor name prefixes; a style adapter names some
    description: str = ""

    @model_validator(mode="after")
    def _style_adapter_names_its_blocks(self) -> IPAdapterPreset:
        if self.purpose == "style" and not self.style_blocks:
            raise ValueError("a style IP-Adapter names its style_blocks")
        return self


class ReduxPreset(_Preset):
    """An image adapter that turns reference images into prompt tokens read beside the text's (FLUX.1 Redux):
    style references and blends for a family that has it (one per family)."""

    name: str = Field(min_length=1)
    family: FamilyName
    source: str = Field(min_length=1)  # hub id or local folder of a diffusers FluxPriorReduxPipeline
    description: str = ""


class DecoderPreset(_Preset):
    """A model family's fast decoder (a tiny autoencoder, TAESD) and the fixed linear map from its latents
    to RGB that previews an image with no weights at all (a row per latent channel: 4, or 16 for FLUX.1's
    and SD 3.5's autoencoders); a family with no tiny autoencoder here has the map alone."""

    name: str = Field(min_length=1)
    family: FamilyName
    source: str | None = Field(None, min_length=1)  # hub id or local folder of a diffusers AutoencoderTiny
    latent_rgb_factors: tuple[tuple[float, float, float], ...] = Field(min_length=4, max_length=16)
    latent_rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    description: str = ""


class UpscalerDownload(_Preset):
    """Official upscaler weights fetched into the upscalers folder when first chosen."""

    name: str = Field(pattern=r"^[\w.+-]+\.(pth|safetensors)$")  # the file name it is saved as
    url: str = Field(pattern=r"^https?://")
    description: str = ""


class CaptionerPreset(_Preset):
    """An image-captioning model (BLIP, run through transformers) that Describe turns into prompts."""

    name: str = Field(min_length=1)
    source: str = Field(min_length=1)  # hub id, or a folder of its model and processor (save_pretrained)
    # Openings the captioner is asked to continue, one suggestion each: steer the four toward different media.
    prefixes: tuple[str, ...] = Field(min_length=1)
    description: str = ""


@dataclass(frozen=True)
class Presets:
    models: dict[str, ModelPreset]
    default_model: str
    other_models: ModelDefaults
    styles: dict[str, StylePreset]
    samplers: dict[str, SamplerPreset]
    aspect_ratios: dict[str, AspectRatio]
    variations: dict[str, Variation]
    controlnets: dict[str, ControlNetPreset]
    ip_adapters: dict[str, IPAdapterPreset]
    annotators: str  # hub id or folder of the structure detectors' weights (HED, line art, depth)
    upscaler_downloads: dict[str, UpscalerDownload]
    decoders: dict[str, DecoderPreset]  # by family
    redux: dict[str, ReduxPreset]  # by family: the families whose style references and blends it takes
    captioners: dict[str, CaptionerPreset]
    default_captioner: str
    # Models served by a name instead of their server path (name -> path): a `--model` folder or file on
    # a studio others can reach, whose visitors see and send its name only.
    local_names: dict[str, str] = field(default_factory=dict)

    def named_locally(self, location: str) -> Presets:
        """These presets with `location` (a local `--model`) as the default model, known by its own name."""
        stem = Path(location).name.removesuffix(".safetensors").removesuffix(".gguf") or "model"
        name = next(n for n in (stem, *(f"{stem}-{i}" for i in range(2, 100))) if n not in self.models)
        return replace(self, default_model=name, local_names={**self.local_names, name: location})

    def defaults_for(self, model: str | None) -> ModelDefaults | ModelPreset:
        """The steps, guidance and sampler a model starts with: its preset's, else `other_models`."""
        return self.models.get((model or "").strip() or self.default_model, self.other_models)

    def sampler(self, name: str) -> SamplerPreset:
        if name not in self.samplers:
            raise InvalidRequest(f"Unknown sampler {name!r}. Choose one of: {', '.join(self.samplers)}.")
        return self.samplers[name]

    def editors(self) -> list[str]:
        """The presets of models made for instruction editing, by name."""
        return [preset.name for preset in self.models.values() if preset.edits]

    def flow_samplers(self) -> list[str]:
        """The samplers that have a flow-matching form, for families that sample by flow matching."""
        return [sampler.name for sampler in self.samplers.values() if sampler.flow_scheduler]

    def sampler_named(self, name: str | None, schedule: str | None = None) -> str | None:
        """Ours for another studio's sampler (and schedule type), or None when nothing here is the same."""
        if not name:
            return None
        wanted = [f"{name} {schedule}".lower(), name.lower()] if schedule else [name.lower()]
        for candidate in wanted:
            for sampler in self.samplers.values():
                if candidate == sampler.name.lower() or candidate in sampler.aliases:
                    return sampler.name
        return None

    def aspect_ratio(self, name: str) -> AspectRatio:
        """A preset by name, or any width:height within `ASPECT_RATIO_RANGE`."""
        return self.aspect_ratios.get(name) or AspectRatio.parse(name)

    def nearest_aspect_ratio(self, width: int, height: int) -> str:
        """The aspect ratio preset closest to a size (compared on a log scale, so 2:1 and 1:2 are alike)."""
        ratio = math.log(width / height)
        return min(self.aspect_ratios.values(), key=lambda a: abs(math.log(a.width / a.height) - ratio)).name

    def ratio_of(self, width: int, height: int) -> str:
        """The aspect ratio to ask for to make an image of this shape again: the nearest preset when sides
        rounded to the model's multiples explain the difference (1344×768 is 16:9, 832×1216 is 2:3), else
        the image's own ratio when that is simple (96×48 is 2:1), else the nearest preset."""
        nearest = self.nearest_aspect_ratio(width, height)
        preset = self.aspect_ratios[nearest]
        divisor = math.gcd(width, height)
        own = width // divisor, height // divisor
        if (
            math.isclose(width / height, preset.width / preset.height, rel_tol=RATIO_TOLERANCE)
            or max(own) > 32
        ):
            return nearest
        return f"{own[0]}:{own[1]}" if within_aspect_range(width / height) else nearest

    def variation(self, name: str) -> Variation:
        if name not in self.variations:
            raise InvalidRequest(f"Unknown variation {name!r}. Choose one of: {', '.join(self.variations)}.")
        return self.variations[name]

    def controlnet(self, architecture: str, structure: str) -> ControlNetPreset | None:
        return next(
            (
                c
                for c in self.controlnets.values()
                if (c.architecture, c.structure) == (architecture, structure)
            ),
            None,
        )

    def ip_adapter(self, architecture: str, purpose: str = "style") -> IPAdapterPreset | None:
        return next(
            (a for a in self.ip_adapters.values() if (a.architecture, a.purpose) == (architecture, purpose)),
            None,
        )

    def decoder(self, family: str) -> DecoderPreset | None:
        """The family's fast decoder, where the presets name one."""
        return self.decoders.get(family)

    def check_styles(self, names: list[str]) -> None:
        unknown = [name for name in names if name not in self.styles]
        if unknown:
            raise InvalidRequest(
                f"Unknown style {', '.join(map(repr, unknown))}. See the style list for names."
            )

    def apply_styles(
        self, prompt: str, negative_prompt: str, names: list[str], weight: float = 1.0
    ) -> tuple[str, str]:
        """Stack styles in order: each template wraps the prompt so far; negative prompts are joined.
        A `weight` other than 1 weighs the templates' own words, `(words:weight)`, as --stylize asks."""
        self.check_styles(names)
        negatives = [negative_prompt.strip()] if negative_prompt.strip() else []
        for name in names:
            style = self.styles[name]
            prompt = weighted_template(style.prompt, weight).replace("{prompt}", prompt)
            for part in style.negative_prompt.split(","):
                part = part.strip()
                if part and part not in negatives:
                    negatives.append(part)
        return prompt, ", ".join(negatives)


def weighted_template(template: str, weight: float) -> str:
    """The template's words around `{prompt}` in A1111's `(words:weight)`; as written at weight 1."""
    if weight == 1:
        return template
    pieces = []
    for piece in template.split("{prompt}"):
        words = piece.strip(" ,.")
        pieces.append(piece.replace(words, f"({words}:{weight:g})", 1) if words else piece)
    return "{prompt}".join(pieces)


def read_entries(path: Path, key: str, preset_type: type[BaseModel]) -> tuple[dict, dict]:
    """The validated entries of `path[key]` by name, and the file's whole JSON object."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise PresetError(f"{path}: preset file not found.") from error
    except json.JSONDecodeError as error:
        raise PresetError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}).") from error
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise PresetError(f"{path}: expected an object with a list {key!r}.")
    entries: dict[str, BaseModel] = {}
    for index, raw in enumerate(document[key]):
        label = f"entry {index}" + (f" ({raw['name']!r})" if isinstance(raw, dict) and "name" in raw else "")
        try:
            entry = preset_type.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in error.errors()
            )
            raise PresetError(f"{path}: {label}: {problems}.") from error
        if entry.name in entries:
            raise PresetError(f"{path}: {label}: the name {entry.name!r} is used twice.")
        entries[entry.name] = entry
    if not entries:
        raise PresetError(f"{path}: {key!r} is empty.")
    return entries, document


def load_presets(folder: Path) -> Presets:
    folder = Path(folder)
    models, models_doc = read_entries(folder / "models.json", "models", ModelPreset)
    styles, _ = read_entries(folder / "styles.json", "styles", StylePreset)
    samplers, _ = read_entries(folder / "samplers.json", "samplers", SamplerPreset)
    aspect_ratios, _ = read_entries(folder / "aspect_ratios.json", "aspect_ratios", AspectRatio)
    variations, _ = read_entries(folder / "variations.json", "variations", Variation)
    controlnets, controlnets_doc = read_entries(folder / "controlnets.json", "controlnets", ControlNetPreset)
    ip_adapters, _ = read_entries(folder / "ip_adapters.json", "ip_adapters", IPAdapterPreset)
    upscaler_downloads, _ = read_entries(folder / "upscalers.json", "downloads", UpscalerDownload)
    decoders, _ = read_entries(folder / "decoders.json", "decoders", DecoderPreset)
    redux, _ = read_entries(folder / "redux.json", "redux", ReduxPreset)
    captioners, captioners_doc = read_entries(folder / "captioners.json", "captioners", CaptionerPreset)
    default_captioner = captioners_doc.get("default", next(iter(captioners)))
    if default_captioner not in captioners:
        raise PresetError(
            f"{folder / 'captioners.json'}: default {default_captioner!r} is not one of the captioners."
        )
    for kind, entries, fields in (
        ("controlnets.json", controlnets, ("architecture", "structure")),
        ("ip_adapters.json", ip_adapters, ("architecture", "purpose")),
        ("decoders.json", decoders, ("family",)),
        ("redux.json", redux, ("family",)),
    ):
        seen: dict[tuple, str] = {}
        for entry in entries.values():
            what = tuple(getattr(entry, name) for name in fields)
            if what in seen:
                raise PresetError(
                    f"{folder / kind}: {entry.name!r} and {seen[what]!r} are both for {'/'.join(what)}."
                )
            seen[what] = entry.name
    missing = {"sd", "sdxl"} - {decoder.family for decoder in decoders.values()}
    if missing:
        families = ", ".join(sorted(missing))
        raise PresetError(f"{folder / 'decoders.json'}: no decoder for the {families} family.")
    annotators = controlnets_doc.get("annotators")
    if not isinstance(annotators, str) or not annotators:
        raise PresetError(f"{folder / 'controlnets.json'}: 'annotators' must name the detectors' weights.")

    models_file = folder / "models.json"
    default_model = models_doc.get("default", next(iter(models)))
    if default_model not in models:
        raise PresetError(f"{models_file}: default {default_model!r} is not one of the models.")
    try:
        other_models = ModelDefaults.model_validate(models_doc.get("other_models"))
    except ValidationError as error:
        raise PresetError(f"{models_file}: other_models: {error.errors()[0]['msg']}.") from error
    for model in models.values():
        if model.enhance_model is not None and model.enhance_model not in models:
            raise PresetError(
                f"{models_file}: {model.name!r}: enhance_model {model.enhance_model!r} is not a model here."
            )
        editor = models.get(model.oref_model) if model.oref_model is not None else None
        if model.oref_model is not None and not (editor and editor.edits):
            raise PresetError(
                f"{models_file}: {model.name!r}: oref_model {model.oref_model!r} is no editing model here."
            )
        live = model.live or LiveSettings()
        if live.model is not None and live.model not in models:
            raise PresetError(
                f"{models_file}: {model.name!r}: live model {live.model!r} is not a model here."
            )
        if live.sampler is not None and live.sampler not in samplers:
            raise PresetError(
                f"{models_file}: {model.name!r}: live sampler {live.sampler!r} is not in samplers.json."
            )
    for model in [*models.values(), other_models]:
        if model.sampler not in samplers:
            raise PresetError(
                f"{models_file}: {getattr(model, 'name', 'other_models')!r}: "
                f"sampler {model.sampler!r} is not in samplers.json."
            )
    for model in models.values():
        family = FAMILIES[model.family]
        if family.samplers == "own" and model.sampler != family.own_sampler:
            raise PresetError(f"{models_file}: {model.name!r}: {family.sampler_note(model.sampler)}")
        if family.samplers == "flow" and not samplers[model.sampler].flow_scheduler:
            raise PresetError(
                f"{models_file}: {model.name!r}: sampler {model.sampler!r} has no flow-matching form "
                f"(flow_scheduler in samplers.json), which {family.label} models sample with."
            )
    return Presets(
        models=models,
        default_model=default_model,
        other_models=other_models,
        styles=styles,
        samplers=samplers,
        aspect_ratios=aspect_ratios,
        variations=variations,
        controlnets=controlnets,
        ip_adapters=ip_adapters,
        annotators=annotators,
        upscaler_downloads=upscaler_downloads,
        decoders={decoder.family: decoder for decoder in decoders.values()},
        redux={entry.family: entry for entry in redux.values()},
        captioners=captioners,
        default_captioner=default_captioner,
    )
