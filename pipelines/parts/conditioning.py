"""Prompt weights and long prompts, through compel: the text encoders' embeddings for a diffusion call.

People type A1111's weights, `(word:1.3)`, `((word))` (×1.1 each), `[word]` (÷1.1), and Midjourney's
multi-prompts, `a castle::2 fog::1`. `to_compel` writes them in compel's syntax, with the prompt's other
brackets, quotes and `word+` escaped so compel reads them as text; compel then weights the embeddings and,
for prompts longer than the 77 tokens CLIP sees at once, encodes them in chunks instead of cutting them
off. SDXL gets both text encoders and the pooled embedding. The prompt is recorded as typed.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

import torch

A1111_TOKEN = re.compile(r"\\[()\[\]\\]|\(|\[|:\s*([+-]?\d*\.?\d+)\s*\)|\)|\]|[^\\()\[\]:]+|:|\\")
MULTI_PROMPT = re.compile(r"::\s*([+-]?\d*\.?\d+)?")
COMPEL_SPECIAL = re.compile(r'([()"])')  # what compel would read as syntax inside plain text
COMPEL_WEIGHT_SUFFIX = re.compile(r"(?<=[^\s+-])([+-]+)(?=\s|[,.;:!?]|$)")  # `word+`, `word--`
ROUND = 1.1  # what one pair of brackets multiplies or divides by
KEPT_PROMPTS = 32  # prompts' embeddings kept per task (a few hundred kB each)


def weighted_segments(prompt: str) -> list[tuple[str, float]]:
    """A1111's attention syntax as (text, weight) runs; nested brackets multiply, as A1111 reads them."""
    segments: list[list] = []
    opened: list[tuple[int, str]] = []  # (index of the first segment inside, bracket)

    def scale(start: int, factor: float) -> None:
        for segment in segments[start:]:
            segment[1] *= factor

    for match in A1111_TOKEN.finditer(prompt):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            segments.append([token[1], 1.0])
        elif token in "([" and token:
            opened.append((len(segments), token))
        elif weight is not None and opened and opened[-1][1] == "(":
            scale(opened.pop()[0], float(weight))
        elif token == ")" and opened and opened[-1][1] == "(":
            scale(opened.pop()[0], ROUND)
        elif token == "]" and opened and opened[-1][1] == "[":
            scale(opened.pop()[0], 1 / ROUND)
        else:
            segments.append([token, 1.0])
    for start, bracket in reversed(opened):  # left open: weighs to the end, as in A1111
        scale(start, ROUND if bracket == "(" else 1 / ROUND)
    merged: list[tuple[str, float]] = []
    for text, weight in segments:
        if merged and abs(merged[-1][1] - weight) < 1e-9:
            merged[-1] = (merged[-1][0] + text, weight)
        else:
            merged.append((text, weight))
    return [(text, weight) for text, weight in merged if text]


def to_compel(prompt: str, *, conjunction: bool = True) -> str:
    """The prompt in compel's syntax: weights and multi-prompts kept, all else literal. A multi-prompt is
    a conjunction of its parts (each encoded apart), or without `conjunction` (compel cannot pool one,
    which SDXL needs) one prompt whose parts weigh as written."""
    parts = _multi_prompt_parts(prompt)
    if len(parts) == 1:
        return _compel_text(parts[0][0])
    strongest = max(abs(weight) for _, weight in parts) or 1.0
    if not conjunction:
        return ", ".join(f"({_compel_text(text).strip()}){weight / strongest:.4g}" for text, weight in parts)
    quoted = ", ".join(f'"{_compel_text(text)}"' for text, _ in parts)
    weights = ", ".join(f"{weight / strongest:g}" for _, weight in parts)  # the strongest part at 1
    return f"({quoted}).and({weights})"


def plain_text(prompt: str) -> str:
    """The prompt's words without weights or multi-prompt marks: what the pooled embedding is of."""
    return " ".join(
        "".join(text for text, _ in weighted_segments(part)) for part, _ in _multi_prompt_parts(prompt)
    )


def _multi_prompt_parts(prompt: str) -> list[tuple[str, float]]:
    """Midjourney's `a::2 b::1 c`: each part and its weight (1 where none is written)."""
    if "::" not in prompt:
        return [(prompt, 1.0)]
    parts, start = [], 0
    for match in MULTI_PROMPT.finditer(prompt):
        text = prompt[start : match.start()].strip()
        if text:
            parts.append((text, float(match.group(1)) if match.group(1) else 1.0))
        start = match.end()
    if prompt[start:].strip():
        parts.append((prompt[start:].strip(), 1.0))
    return parts or [("", 1.0)]


def _compel_text(prompt: str) -> str:
    pieces = []
    for text, weight in weighted_segments(prompt):
        # CLIP's tokenizer splits `word-` into `word` and `-` whatever the spacing; compel would weigh it
        escaped = COMPEL_WEIGHT_SUFFIX.sub(r" \1", COMPEL_SPECIAL.sub(r"\\\1", text))
        if abs(weight - 1) < 1e-9 or not escaped.strip():
            pieces.append(escaped)
        else:  # compel's weights attach to a parenthesised group; the spaces stay outside it
            stripped = escaped.strip()
            lead, tail = escaped[: len(escaped) - len(escaped.lstrip())], escaped[len(escaped.rstrip()) :]
            pieces.append(f"{lead}({stripped}){weight:.4g}{tail}")
    return "".join(pieces)


def text_conditioning(prompt: str, negative_prompt: str, tokens: int, *, guided: bool) -> dict[str, Any]:
    """The call's prompts for a family whose pipeline reads them as text (FLUX.1, SD 3.5: T5 for `tokens`
    tokens beside CLIP): the words without weights or multi-prompt marks, which T5 has no way to weigh; the
    negative prompt where the call is `guided`."""
    arguments: dict[str, Any] = {"prompt": plain_text(prompt), "max_sequence_length": tokens}
    if guided:
        arguments["negative_prompt"] = plain_text(negative_prompt)
    return arguments


@torch.no_grad()  # embeddings, kept between runs: no autograd graph of the text encoders hangs on them
def prompt_conditioning(
    pipe: Any, family: str, prompt: str, negative_prompt: str, *, guided: bool = True
) -> dict[str, Any]:
    """The embeddings keyword arguments of a diffusers call of `pipe` for these prompts (weighted,
    chunked past 77 tokens). Run it where the call runs: it uses the text encoders. Not `guided` (guidance
    of 1 or less: no classifier-free guidance), the call never reads a negative prompt, so none is encoded,
    as diffusers does (and the prompt is not padded to a longer negative's length)."""
    from compel import CompelForSD, CompelForSDXL

    device = pipe._execution_device
    if family == "sdxl":
        compel = CompelForSDXL(pipe, device=device)

        def pooled(text: str) -> Any:
            # compel pools the text as given to it, weights' brackets and all; the pooled embedding is of
            # the words alone, as diffusers makes it (CLIP's first 77 tokens), one prompt at a time (a batch
            # of two rounds differently)
            provider = compel.compel_2.conditioning_provider
            return provider.get_pooled_embeddings([plain_text(text)], device=device)

        if not guided:
            embeds = compel(main_prompt=to_compel(prompt, conjunction=False)).embeds
            return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled(prompt)}
        conditioning = compel(
            main_prompt=to_compel(prompt, conjunction=False),
            negative_prompt=to_compel(negative_prompt, conjunction=False),
        )
        arguments = {
            "prompt_embeds": conditioning.embeds,
            "pooled_prompt_embeds": pooled(prompt),
            "negative_prompt_embeds": conditioning.negative_embeds,
            "negative_pooled_prompt_embeds": pooled(negative_prompt),
        }
        if not negative_prompt.strip() and getattr(pipe.config, "force_zeros_for_empty_prompt", False):
            # As diffusers does for SDXL: no negative prompt is zeros, not the encoding of "".
            arguments["negative_prompt_embeds"] = arguments["negative_prompt_embeds"].new_zeros(
                arguments["negative_prompt_embeds"].shape
            )
            arguments["negative_pooled_prompt_embeds"] = arguments["negative_pooled_prompt_embeds"].new_zeros(
                arguments["negative_pooled_prompt_embeds"].shape
            )
        return arguments
    if not guided:
        return {"prompt_embeds": CompelForSD(pipe, device=device)(to_compel(prompt)).embeds}
    conditioning = CompelForSD(pipe, device=device)(
        to_compel(prompt), negative_prompt=to_compel(negative_prompt)
    )
    return {"prompt_embeds": conditioning.embeds, "negative_prompt_embeds": conditioning.negative_embeds}


# -- the embeddings of recent prompts, kept -------------------------------------------------------------
# A prompt is often made again (new seeds, Vary, a steered run's drafts, Live's frames as one types): its
# embeddings are kept, as AUTOMATIC1111 keeps its last conditioning, by everything they depend on.


class PromptKey(NamedTuple):
    """Everything a run's prompt embeddings depend on."""

    model: str
    text_encoder: str
    loras: tuple[str, ...]
    prompt: str
    negative_prompt: str
    guided: bool


class PromptMemo:
    """The prompts' embeddings of a task's latest runs, by everything they depend on."""

    def __init__(self, size: int = KEPT_PROMPTS) -> None:
        self.size = size
        self._kept: OrderedDict[PromptKey, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.encoded = 0  # prompts encoded, not found kept

    def get(self, key: PromptKey) -> dict[str, Any] | None:
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
            return None

    def prompts(self) -> set[str]:
        """The prompts (styles applied) whose embeddings are kept."""
        with self._lock:
            return {key.prompt for key in self._kept}

    def put(self, key: PromptKey, conditioning: dict[str, Any]) -> None:
        with self._lock:
            self.encoded += 1
            self._kept[key] = conditioning
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
