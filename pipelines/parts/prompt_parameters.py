"""Parameters typed in the prompt, as Midjourney users type them, and A1111's `<lora:name:weight>` tags.

    stone wall --ar 2:1 --no moss, ivy --tile --seed 7 --chaos 30 <lora:detail:0.8>

`apply_prompt_parameters` takes them out of the prompt and sets the request's own fields: `--ar W:H`
(the nearest of the aspect-ratio presets), `--seed N`, `--no a, b` (joined to the negative prompt),
`--chaos 0-100`, `--tile`, `--stylize`/`--s 0-1000`, `--iw` (image weight, where there is an image
prompt), `--steps N`, `--cfg N`, `--sref CODE [CODE::2 random]` (saved style codes), `--sw 0-1000`
(style weight), `--ow 0-1000` (object weight), `--p [CODE]` (a taste profile), and LoRA tags. Whatever
a task cannot honour is named, never silently dropped: the notes come back to be shown, and are recorded
in each image's parameters.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar

from studio.core.errors import InvalidRequest
from studio.core.presets import RATIO, Presets
from studio.core.requests import Request
from studio.core.taste import DEFAULT_PROFILE, is_code

LORA_TAG = re.compile(r"<lora:([^:>]+)(?::\s*([-+]?\d*\.?\d+))?\s*>", re.IGNORECASE)
FLAG = re.compile(r"(?:^|\s)--([a-zA-Z][\w-]*)")
ALIASES = {
    "s": "stylize", "c": "chaos", "aspect": "ar", "guidance": "cfg", "image-weight": "iw", "personalize": "p",
}  # fmt: skip
STYLE_CODE_VALUE = re.compile(r"^(?:[a-z2-7]{8,52}|random)(?:::\d*\.?\d+)?$", re.IGNORECASE)
SEVERAL_VALUES = {"sref": STYLE_CODE_VALUE}  # flags taking every leading value that reads as theirs


@dataclass(frozen=True)
class PromptParameters:
    prompt: str  # what is left: the prompt itself
    flags: list[tuple[str, str]] = field(default_factory=list)  # (name, value as typed), in order
    loras: list[str] = field(default_factory=list)  # "name:weight"


def parse_prompt_parameters(text: str, *, tags_only: bool = False) -> PromptParameters:
    """Split a prompt into its text, its `--flags` and its LoRA tags (nothing is checked here);
    `tags_only`: the LoRA tags alone, the rest left as written."""
    loras = [f"{name.strip()}:{weight or '1'}" for name, weight in LORA_TAG.findall(text)]
    if not loras and tags_only:
        return PromptParameters(text)
    text = LORA_TAG.sub(" ", text)
    if tags_only:  # another studio's prompt: its lines kept, the commas around a tag taken with it
        lines = (
            re.sub(r"(\s*,)+", ",", re.sub(r"[ \t]+", " ", line)).strip(" ,") for line in text.splitlines()
        )
        return PromptParameters("\n".join(line for line in lines if line), [], loras)
    starts = list(FLAG.finditer(text))
    if not starts:
        return PromptParameters(_tidy(text), [], loras)
    flags = []
    for here, after in zip(starts, [*starts[1:], None], strict=True):
        value = text[here.end() : after.start() if after else len(text)].strip()
        flags.append((ALIASES.get(here.group(1).lower(), here.group(1).lower()), value))
    return PromptParameters(_tidy(text[: starts[0].start()]), flags, loras)


def apply_prompt_parameters(
    values: dict[str, Any],
    request_type: type[Request],
    presets: Presets,
    *,
    keep_unhonoured: bool = False,
    settable: Collection[str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """`values` with the prompt's parameters taken out and set as the fields `request_type` has; and the
    notes saying what was not honoured (also kept in `ignored_parameters`, when the request has it) or
    only approximated. `keep_unhonoured` leaves what this task cannot honour in the prompt, unnoted: the
    page moves the rest into its controls at once, and the run names what is left. `settable` narrows
    the fields that may be set to those (the page's controls); what needs another stays in the prompt."""
    parsed = parse_prompt_parameters(str(values.get("prompt") or ""))
    if not parsed.flags and not parsed.loras:
        return values, []
    fields = {
        name: info for name, info in request_type.model_fields.items() if settable is None or name in settable
    }
    result = {**values, "prompt": parsed.prompt}
    notes: list[str] = []  # what was not honoured
    approximations: list[str] = []  # what was honoured as nearly as this studio can
    kept: list[str] = []  # with keep_unhonoured: what stays in the prompt

    def unused(typed: str, why: str) -> None:
        (kept if keep_unhonoured else notes).append(typed if keep_unhonoured else f"{typed} {why}")

    for flag, value in parsed.flags:
        if flag != "no":  # its own value(s) only: words after them are prompt text typed after the flags
            value, rest = _own_values(flag, value)
            if rest.strip():
                result["prompt"] = _tidy(f"{result['prompt']} {rest}")
        typed = f"--{flag} {value}".strip()
        setter = SETTERS.get(flag)
        if setter is None:
            unused(typed, ELSEWHERE.get(flag, "is not something this studio does: it was left out"))
            continue
        target, convert = setter
        if not _applies(target, fields):
            why = WHY_NOT.get(target, "this task has no such setting")
            unused(typed, f"does nothing here ({why}): it was left out")
            continue
        try:
            convert(result, value, presets, fields, approximations)
        except (ValueError, TypeError, AttributeError):  # a value that does not read as the flag's
            raise InvalidRequest(f"--{flag} {value!r}: {EXPECTED[flag]}") from None
    if parsed.loras:
        if "loras" in fields:
            result["loras"] = _joined(result.get("loras"), parsed.loras)
        elif keep_unhonoured:
            kept.extend(f"<lora:{lora}>" for lora in parsed.loras)
        else:
            notes.append("LoRAs do nothing here: the <lora:…> tags were left out")
    if kept:
        result["prompt"] = _tidy(" ".join([result["prompt"], *kept]))
    if notes and "ignored_parameters" in fields:
        result["ignored_parameters"] = (*tuple(result.get("ignored_parameters") or ()), *notes)
    return result, notes + approximations


def _own_values(flag: str, value: str) -> tuple[str, str]:
    """A flag's value as typed, and the words after it, which belong to the prompt."""
    if flag == "tile":
        return "", value
    if flag == "p":  # a code, or none: the asker's own profile
        first, _, rest = value.partition(" ")
        return (first, rest) if is_code(first.lower()) else ("", value)
    pattern = SEVERAL_VALUES.get(flag)
    if pattern is None:
        first, _, rest = value.partition(" ")
        return first, rest
    words = value.split()
    count = next((i for i, word in enumerate(words) if not pattern.match(word)), len(words))
    return " ".join(words[: max(count, 1)]), " ".join(words[max(count, 1) :])


def _applies(target: str, fields: dict) -> bool:
    if target == "image_prompt":  # --iw sets whichever weight the task's image prompt has
        return "strength" in fields or "style_strength" in fields
    return target in fields


def _joined(chosen: Any, more: list[str]) -> Any:
    """LoRAs already chosen (the page's comma-separated box, or a list) with the prompt's tags after."""
    if isinstance(chosen, str) or chosen is None:
        return ", ".join(part for part in [*(chosen or "").split(","), *more] if part.strip())
    return (*chosen, *more)


class ReadsPromptParameters:
    """For a task whose request has a prompt: `read_prompt_parameters`, which the job runner calls on every
    request (the API's too) and the page before a run."""

    request_type: type[Request]
    presets: Presets
    reads_prompt_parameters: ClassVar[bool] = True

    def read_prompt_parameters(
        self, values: dict[str, Any], **options: Any
    ) -> tuple[dict[str, Any], list[str]]:
        """Request values with `--ar 16:9`, `--no trees`, `<lora:x:0.8>`... in the prompt moved to their
        fields, and notes on what was not honoured (see `apply_prompt_parameters` for the options)."""
        return apply_prompt_parameters(values, self.request_type, self.presets, **options)


# -- each flag ---------------------------------------------------------------------------------------------


def _aspect(values: dict, value: str, presets: Presets, fields: dict, notes: list[str]) -> None:
    if not RATIO.fullmatch(value):
        raise ValueError(value)
    shape = presets.aspect_ratio(value.strip())  # any ratio in range, or a plain message
    values["aspect_ratio"] = shape.name


def _integer(name: str):
    def set_integer(values: dict, value: str, presets: Presets, fields: dict, notes: list[str]) -> None:
        values[name] = int(value)

    return set_integer


def _number(name: str):
    def set_number(values: dict, value: str, presets: Presets, fields: dict, notes: list[str]) -> None:
        values[name] = float(value)

    return set_number


def _negative(values: dict, value: str, presets: Presets, fields: dict, notes: list[str]) -> None:
    if not value:
        raise ValueError(value)
    typed = str(values.get("negative_prompt") or "").strip()
    values["negative_prompt"] = ", ".join(part for part in (typed, value) if part)


def _tile(values: dict, value: str, presets: Presets, fields: dict, notes: list[str]) -> None:
    values["tile"] = True


def _image_weight(values: dict, value: str, presets: Presets, fields: dict, notes: list[str]) -> None:
    """Midjourney's image weight (0-3, 1 as usual): how much the image prompt counts against the text."""
    weight = float(value)
    if not 0 <= weight <= 3:
        raise ValueError(value)
    if "style_strength" in fields:  # the style image of diffusion style transfer
        values["style_strength"] = round(min(1.5, 0.8 * weight), 3)
    else:  # the input image of image to image: more weight, less change
        values["strength"] = round(min(1.0, max(0.05, 1 - 0.4 * weight)), 3)


def _profile(values: dict, value: str, presets: Presets, fields: dict, notes: list[str]) -> None:
    values["profile"] = value.lower() if value else DEFAULT_PROFILE


def _style_codes(values: dict, value: str, presets: Presets, fields: dict, notes: list[str]) -> None:
    codes = value.split()
    if not codes or not all(STYLE_CODE_VALUE.match(code) for code in codes):
        raise ValueError(value)
    values["style_codes"] = (*tuple(values.get("style_codes") or ()), *(code.lower() for code in codes))


SETTERS = {
    "ar": ("aspect_ratio", _aspect),
    "seed": ("seed", _integer("seed")),
    "no": ("negative_prompt", _negative),
    "chaos": ("chaos", _integer("chaos")),
    "tile": ("tile", _tile),
    "stylize": ("stylize", _integer("stylize")),
    "iw": ("image_prompt", _image_weight),
    "steps": ("steps", _integer("steps")),
    "cfg": ("guidance_scale", _number("guidance_scale")),
    "sref": ("style_codes", _style_codes),
    "sw": ("style_weight", _integer("style_weight")),
    "ow": ("object_weight", _integer("object_weight")),
    "p": ("profile", _profile),
}
ELSEWHERE = {  # flags whose value is an image: what to do instead of typing it
    "oref": "takes an image here: put it under Character or object reference; it was left out",
}
WHY_NOT = {  # why a flag does nothing in a task whose request lacks its field
    "aspect_ratio": "an input image keeps its own shape",
    "image_prompt": "there is no image prompt",
    "style_codes": "this task takes no style references",
    "style_weight": "this task takes no style references",
    "object_weight": "this task takes no object reference",
    "profile": "only images made by a model are steered by a profile",
}
EXPECTED = {
    "ar": "give it as width:height, e.g. --ar 16:9",
    "seed": "give a whole number, e.g. --seed 42",
    "no": "give what to keep out, e.g. --no trees, people",
    "chaos": "give a whole number from 0 to 100",
    "tile": "it takes no value",
    "stylize": "give a whole number from 0 to 1000",
    "iw": "give a number from 0 to 3",
    "steps": "give a whole number of steps",
    "cfg": "give a number, e.g. --cfg 6.5",
    "sref": "give saved style codes or random, e.g. --sref k3vq7m2a (style images go under Style references)",
    "sw": "give a whole number from 0 to 1000",
    "ow": "give a whole number from 0 to 1000",
    "p": "give a profile code from the Personalize tab, e.g. --p k3vq7m2a, or none for your own",
}


def _tidy(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
