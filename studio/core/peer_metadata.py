"""Generation parameters other studios write, read with sd-parsers, the library made for exactly this.

sd-parsers knows AUTOMATIC1111 / Forge / SD.Next (the `parameters` text chunk, JPEG and WebP EXIF
UserComment, and the "stealth" form in a PNG's alpha channel), Fooocus (its JSON scheme), InvokeAI
(`invokeai_metadata`, `sd-metadata` and the older `Dream`), NovelAI (`Comment` JSON) and ComfyUI (the prompt
graph: the sampler node's seed, steps, CFG and sampler, and the text nodes it uses). What it reads is turned
into the fields this studio's forms take; everything else the file says is kept for display.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import threading
from typing import Any

from PIL import Image

_lock = threading.Lock()  # sd-parsers keeps its last image in module globals


_SETTING = re.compile(r'\s*([\w][\w \-/+.()]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def parse_parameters_text(text: str) -> dict[str, Any]:
    """Parse the `parameters` layout into a dict.

    Keys: `prompt`, `negative_prompt`, and each `Key: value` setting as written (`Steps`, `Sampler`, ...),
    plus `width`/`height` from `Size`, `steps`, `seed` and `guidance_scale` as numbers when present.
    """
    lines = text.strip().split("\n")
    settings: dict[str, Any] = {}
    # The last line holds the settings when it reads as at least three `Key: value` pairs.
    if lines and len(_SETTING.findall(lines[-1])) >= 3:
        for key, value in _SETTING.findall(lines.pop()):
            value = value.strip()
            if value.startswith('"') and value.endswith('"'):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    value = value[1:-1]
            settings[key.strip()] = value
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    result: dict[str, Any] = {
        "prompt": "\n".join(prompt_lines).strip(),
        "negative_prompt": "\n".join(negative_lines).strip(),
        **settings,
    }
    for key, name, convert in (
        ("Steps", "steps", int),
        ("Seed", "seed", int),
        ("CFG scale", "guidance_scale", float),
    ):
        if key in settings:
            with contextlib.suppress(ValueError):
                result[name] = convert(settings[key])
    size = re.fullmatch(r"(\d+)x(\d+)", str(settings.get("Size", "")))
    if size:
        result["width"], result["height"] = int(size.group(1)), int(size.group(2))
    if "Sampler" in settings:
        result["sampler"] = settings["Sampler"]
    if "Model" in settings:
        result["model"] = settings["Model"]
    return result


def read_peer_parameters(image: Image.Image) -> dict[str, Any] | None:
    """Another studio's parameters as fields (`prompt`, `negative_prompt`, `steps`, `seed`, `guidance_scale`,
    `sampler`, `scheduler`, `model`, `width`, `height`, `generator`, and `settings`: all else it says), or
    None when the image carries none that any of them writes."""
    from sd_parsers import ParserManager
    from sd_parsers.extractors import Eagerness

    with _lock:
        _forget_the_last_image()
        try:
            info = ParserManager().parse(image, eagerness=Eagerness.EAGER)
        except Exception:  # a damaged chunk in one studio's format is a file without parameters, not a crash
            return None
    if info is None or not info.samplers:
        return None
    sampler = max(info.samplers, key=lambda s: _number(s.parameters.get("denoise")) or 1.0)  # the first pass
    parameters = dict(sampler.parameters)
    prompts = sampler.prompts or info.prompts
    negatives = sampler.negative_prompts or info.negative_prompts
    model = sampler.model or next(iter(info.models), None)
    width, height = _size(info.metadata)
    fields: dict[str, Any] = {
        "generator": _generator_name(info.generator),
        "prompt": ", ".join(p.value for p in prompts),
        "negative_prompt": ", ".join(p.value for p in negatives),
        "steps": _integer(parameters.pop("steps", None)),
        "seed": _integer(parameters.pop("seed", None)),
        "guidance_scale": _number(parameters.pop("cfg_scale", None)),
        "sampler": sampler.name,
        "scheduler": parameters.pop("scheduler", None),
        "model": model.name if model else None,
        "width": width,
        "height": height,
    }
    metadata = dict(info.metadata)
    # sd-parsers leaves some studios' settings in the file's metadata (NovelAI's `steps`, in its Comment):
    # what the sampler did not give is taken from there, and shown once.
    for field, key, convert in (("steps", "steps", _integer), ("seed", "seed", _integer),
                                ("guidance_scale", "scale", _number)):  # fmt: skip
        if fields[field] is None and key in metadata:
            fields[field] = convert(metadata.pop(key))
    for key in ("prompt", "uc", "width", "height"):  # already the prompt, negative prompt and size
        metadata.pop(key, None)
    settings = {key: str(value) for key, value in parameters.items()}
    settings.update({key: str(value) for key, value in metadata.items() if _displayable(value)})
    text = (info.raw_parameters or {}).get("parameters")
    if fields["generator"] == "AUTOMATIC1111" and isinstance(text, str):
        # Our reading of that layout keeps quoted values whole ("Lora hashes": "a: 1, b: 2").
        written = parse_parameters_text(text)
        settings = {key: value for key, value in written.items() if key[0].isupper()}
    fields["settings"] = settings
    return {key: value for key, value in fields.items() if value not in (None, "")} | {"settings": settings}


def describe_peer_parameters(fields: dict[str, Any]) -> str:
    """The fields in the widely read `parameters` layout, for people, headed by the studio that wrote them."""
    lines = [f"Made with {fields.get('generator', 'another studio')}", fields.get("prompt", "")]
    if fields.get("negative_prompt"):
        lines.append(f"Negative prompt: {fields['negative_prompt']}")
    named = {
        "Steps": "steps",
        "Sampler": "sampler",
        "Schedule type": "scheduler",
        "CFG scale": "guidance_scale",
    }
    settings = [f"{label}: {_plain(fields[key])}" for label, key in named.items() if key in fields]
    settings += [f"Seed: {fields['seed']}"] if "seed" in fields else []
    if "width" in fields and "height" in fields:
        settings.append(f"Size: {fields['width']}x{fields['height']}")
    if "model" in fields:
        settings.append(f"Model: {fields['model']}")
    lines.append(", ".join(settings))
    return "\n".join(line for line in lines if line)


def _forget_the_last_image() -> None:
    """sd-parsers' EXIF and alpha-channel readers remember the last image by `id()`. A new image can get a
    freed image's id, and would then be read as the old one: forget it before every read."""
    from sd_parsers.extractors import _jpeg_usercomment, _png_stenographic_alpha

    _jpeg_usercomment._image_id = None
    _png_stenographic_alpha._image_id = None


def _generator_name(generator: Any) -> str:
    names = {"AUTOMATIC1111": "AUTOMATIC1111", "COMFYUI": "ComfyUI", "FOOOCUS": "Fooocus"}
    names.update(INVOKEAI="InvokeAI", NOVELAI="NovelAI")
    return names.get(getattr(generator, "name", ""), str(getattr(generator, "value", generator)))


def _size(metadata: dict[str, Any]) -> tuple[int | None, int | None]:
    """Width and height wherever the studio put them: `Size: 832x1216`, `width`/`height`, Fooocus's
    `resolution: (1024, 1024)`, or ComfyUI's empty-latent node."""
    if isinstance(metadata.get("Size"), str):
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", metadata["Size"])
        if match:
            return int(match.group(1)), int(match.group(2))
    if "width" in metadata and "height" in metadata:
        return _integer(metadata["width"]), _integer(metadata["height"])
    if isinstance(metadata.get("resolution"), str):
        try:
            width, height = ast.literal_eval(metadata["resolution"])
            return int(width), int(height)
        except (ValueError, SyntaxError, TypeError):
            pass
    latent = metadata.get("EmptyLatentImage")
    nodes = latent if isinstance(latent, list) else [latent]
    for node in nodes:
        inputs = node.get("inputs", node) if isinstance(node, dict) else {}
        if "width" in inputs and "height" in inputs:
            return _integer(inputs["width"]), _integer(inputs["height"])
    return None, None


def _integer(value: Any) -> int | None:
    """A whole number, exactly (64-bit seeds lose digits through a float)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    number = _number(value)
    return int(number) if number is not None and float(number).is_integer() else None


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _displayable(value: Any) -> bool:
    return isinstance(value, str | int | float) and len(str(value)) < 500
