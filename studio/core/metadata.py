"""Generation parameters, and their round trip through PNG text chunks.

Two chunks go into every PNG:
- `parameters`: the layout most studios write and read (a prompt line, `Negative prompt: ...`, then
  `Steps: N, Sampler: ..., CFG scale: ..., Seed: ..., Size: WxH, Model: ...`), so other tools read our files;
- `studio`: the same parameters as JSON, lossless, so our own files come back exactly.
A result made with a style reference also carries `studio-style`, its embedding (studio/core/style_codes.py).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from studio.core.peer_metadata import parse_parameters_text, read_peer_parameters

PARAMETERS_CHUNK = "parameters"
JSON_CHUNK = "studio"


@dataclass(frozen=True)
class GenerationParameters:
    """Everything needed to make one image again."""

    task: str  # "txt2img", "img2img", ...
    prompt: str  # as sent to the model, styles applied
    negative_prompt: str
    steps: int
    sampler: str
    guidance_scale: float
    seed: int | None  # None: nothing denoised it and its source had none (an upscaled photo)
    width: int
    height: int
    model: str
    user_prompt: str = ""  # as typed, before styles
    user_negative_prompt: str = ""
    styles: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)  # task-specific values (strength, upscaler, ...)

    @property
    def typed_prompt(self) -> str:
        """The prompt before styles. Results that recorded none (made from another studio's image, which
        no style of ours wrapped) give their prompt itself."""
        return self.user_prompt if self.user_prompt or self.styles else self.prompt

    @property
    def typed_negative_prompt(self) -> str:
        return self.user_negative_prompt if self.user_negative_prompt or self.styles else self.negative_prompt

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["styles"] = list(self.styles)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationParameters:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["styles"] = tuple(values.get("styles", ()))
        return cls(**values)

    def to_text(self) -> str:
        """The widely read `parameters` layout."""
        fields: dict[str, Any] = {}
        if self.steps:  # an image a model denoised; an instant style or a plain upscale has no sampling
            fields.update(
                {"Steps": self.steps, "Sampler": self.sampler, "CFG scale": _number(self.guidance_scale)}
            )
        if self.seed is not None:
            fields["Seed"] = self.seed
        fields["Size"] = f"{self.width}x{self.height}"
        if self.model:
            fields["Model"] = self.model
        if self.styles:
            fields["Styles"] = ", ".join(self.styles)
        for key, value in self.extras.items():
            if key == "loras":  # in the prompt, as AUTOMATIC1111 writes them
                continue
            if isinstance(value, list | tuple):
                value = ", ".join(str(_number(v) if isinstance(v, float) else v) for v in value)
            fields[key.replace("_", " ").capitalize()] = _number(value) if isinstance(value, float) else value
        settings = ", ".join(f"{key}: {_quote(str(value))}" for key, value in fields.items())
        prompt = " ".join([self.prompt, *(f"<lora:{lora}>" for lora in self.extras.get("loras", []))])
        # Readers take a line starting "Negative prompt:" as the negative prompt's start: within the
        # prompt such a line is joined to the one before (the `studio` chunk keeps the prompt exactly).
        lines = [re.sub(r"\n(?=\s*Negative prompt:)", " ", prompt)]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        lines.append(settings)
        return "\n".join(lines)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 4)


def _quote(value: str) -> str:
    # Values with separators are written as JSON strings, as other studios do.
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ',:"\n') else value


def png_info(
    parameters: GenerationParameters, extra_chunks: Mapping[str, str] | None = None
) -> PngImagePlugin.PngInfo:
    """Both parameter chunks, then `extra_chunks` (ASCII text, such as a style embedding in base64)."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PARAMETERS_CHUNK, parameters.to_text())
    info.add_itxt(JSON_CHUNK, json.dumps(parameters.to_dict(), ensure_ascii=False))
    for key, text in (extra_chunks or {}).items():
        info.add_text(key, text)
    return info


def save_png(
    image: Image.Image,
    path: Path,
    parameters: GenerationParameters,
    *,
    exclusive: bool = True,
    extra_chunks: Mapping[str, str] | None = None,
) -> None:
    """Write a lossless PNG carrying both chunks (and `extra_chunks`); `exclusive` refuses to replace an
    existing file."""
    with open(path, "xb" if exclusive else "wb") as file:
        image.save(file, format="PNG", pnginfo=png_info(parameters, extra_chunks))


def read_parameters(image: Image.Image | str | Path) -> GenerationParameters | dict[str, Any] | None:
    """Parameters carried by an image (PNG, JPEG or WebP): ours exactly, from our `studio` chunk first (a
    `GenerationParameters`); another studio's as fields (studio/core/peer_metadata.py), or parsed from a
    `parameters` text chunk no studio's reader claims. None when the image carries none."""
    if not isinstance(image, Image.Image):
        with Image.open(image) as opened:
            return read_parameters(opened)
    chunks = {**getattr(image, "text", {}), **image.info}
    if JSON_CHUNK in chunks:
        try:
            return GenerationParameters.from_dict(json.loads(chunks[JSON_CHUNK]))
        except (json.JSONDecodeError, TypeError, ValueError):
            pass  # fall back to what other studios read
    peer = read_peer_parameters(image)
    if peer is not None:
        return peer
    if isinstance(chunks.get(PARAMETERS_CHUNK), str):
        return parse_parameters_text(chunks[PARAMETERS_CHUNK])
    return None
