"""Image prompts: style references and style codes (`--sref`, `--sw`), blends, and a character or object
reference (`--oref`, `--ow`), each through an IP-Adapter from the shared cache, attached for one call only.

1. each prompt's images go through its adapter's image encoder (under the GPU lock), and style codes are
   read from the styles folder (`--sref random` picks one, drawn from the run's seed);
2. the embeddings are mixed by weight into one per prompt (`mix_embeddings`): several references, a
   moodboard's images or a blend's become one image prompt, as a style code holds one;
3. the denoising call gets them as `ip_adapter_image_embeds`, with the unconditional embedding guidance
   moves away from, while `ip_adapters_applied` swaps the adapters into the shared UNet: a style reaches
   the style blocks only (InstantStyle), a blend and an object reference every block;
4. a style's embedding is recorded with the result (its code in the parameters, its bytes in a PNG chunk),
   so whoever gets the PNG can save the style as a code of their own.

A run steered by a taste profile whose image encoder is this IP-Adapter's may take the profile's taste
embedding as one more image prompt, at a low weight on the style blocks (`taste_prompt`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from PIL import Image

from studio.core.cache import BaseModel, Lease, ModelCache
from studio.core.cache.kinds import IP_ADAPTER, REDUX
from studio.core.control_models import AdapterUse, IPAdapter, ip_adapters_applied, load_ip_adapter, load_redux
from studio.core.errors import InvalidRequest
from studio.core.presets import IPAdapterPreset, Presets
from studio.core.style_codes import (
    CODE_LENGTH,
    StyleCodes,
    StyleEmbedding,
    content_digest,
    encoder_name,
    mix_embeddings,
    style_png_chunks,
)
from studio.core.taste import Profile, Seen, Sight, seen_by

Purpose = Literal["style", "object", "blend", "taste"]
RANDOM_CODE = "random"  # `--sref random`: a saved code, drawn from the run's seed
ADAPTER_PURPOSE = {"style": "style", "blend": "style", "object": "object", "taste": "style"}  # which preset
WHAT = {"style": "a style reference", "blend": "a blend", "object": "a character or object reference",
        "taste": "a taste embedding"}  # fmt: skip
TASTE_SCALE = 0.3  # the taste embedding's scale on the style blocks: a nudge, under the prompt's say
BLEND_SCALE = 1.0  # a blend's adapter's scale on every block: the images are the prompt


@dataclass(frozen=True, eq=False)
class ImagePrompt:
    """One image prompt of a run: its images and style codes, their weights, and the adapter's scale."""

    purpose: Purpose
    images: tuple[Image.Image, ...] = ()
    codes: tuple[str, ...] = ()  # style codes, or "random"
    weights: tuple[float, ...] = ()  # one per image, then one per code; empty: all equal
    scale: float = 1.0
    embeddings: tuple[torch.Tensor, ...] = ()  # ready-made ones (a taste embedding), after the codes


@dataclass
class AttachedImagePrompts:
    """What the image prompts of a run add to each denoising call."""

    uses: list[AdapterUse]
    embeddings: list[tuple[torch.Tensor, torch.Tensor]]  # (unconditional, conditional), in `uses`' order
    extras: dict[str, Any] = field(default_factory=dict)  # recorded in every image's parameters
    png_chunks: dict[str, str] = field(default_factory=dict)  # the style embedding, for the PNG
    # Redux's prompt tokens of each image prompt (1 × tokens × text width), read after the text's
    tokens: list[torch.Tensor] = field(default_factory=list)

    def added_to(self, pipe: Any, arguments: dict[str, Any], guided: bool) -> dict[str, Any]:
        """A call's `arguments` with the image prompts: the IP-Adapters' `ip_adapter_image_embeds` (with
        guidance, unconditional first, as diffusers reads them); or, for Redux, the prompt's own embeddings
        with the images' tokens after them, as diffusers' FluxPriorReduxPipeline hands them on."""
        if self.tokens:
            return redux_conditioning(pipe, arguments, self.tokens)
        if not self.embeddings:
            return arguments
        embeds = [
            torch.cat([negative[None], positive[None]]) if guided else positive[None]
            for negative, positive in self.embeddings
        ]
        return arguments | {"ip_adapter_image_embeds": embeds}

    def applied(self, pipe: Any) -> AbstractContextManager:
        """The adapters swapped into the pipeline's UNet for one call; untouched without image prompts."""
        return (
            ip_adapters_applied(pipe.unet, self.uses, pipe._execution_device) if self.uses else nullcontext()
        )


def style_scale(style_weight: int) -> float:
    """Midjourney's --sw (0-1000, 100 as usual) as the IP-Adapter's scale on the style blocks: 0.8 at 100,
    as Style Transfer's default, growing with the square root up to 1.5."""
    return round(min(1.5, 0.8 * (style_weight / 100) ** 0.5), 3)


def object_scale(object_weight: int) -> float:
    """--ow (0-1000, 100 as usual) as the object adapter's scale on every block: 0.6 at 100 leaves the
    prompt room to place the character; up to 1.2."""
    return round(min(1.2, 0.6 * (object_weight / 100) ** 0.5), 3)


class ImagePromptAdapters:
    """Loads the adapters image prompts need into the shared cache, and makes their embeddings."""

    def __init__(self, cache: ModelCache, presets: Presets, codes: StyleCodes | None) -> None:
        self.cache = cache
        self.presets = presets
        self.codes = codes  # None: this studio keeps no style codes

    # 1-4. The adapters, embeddings and records of a run's image prompts
    def attach(
        self,
        lease: Lease,
        base: BaseModel,
        prompts: Sequence[ImagePrompt],
        seed: int,
    ) -> AttachedImagePrompts:
        """What `prompts` (each with images or codes) add to the run's calls: nothing when there are none."""
        attached = AttachedImagePrompts([], [])
        for prompt in prompts:
            if prompt.purpose == "object" and base.edits:
                continue  # an editing model takes it as the image it edits (the task's `prepare`)
            if takes_redux(self.presets, base, prompt):
                attached.tokens.append(self.redux_tokens(lease, base, prompt))
                attached.extras["redux"] = self.presets.redux[base.family].name
                continue
            preset = self.preset(base, prompt.purpose)
            adapter = self.adapter(lease, base, preset)
            embedding, codes = self.embedding(adapter, prompt, seed)
            dtype = next(adapter.image_encoder.parameters()).dtype
            conditional = embedding.to(dtype)
            with self.cache.gpu_lock:
                unconditional = adapter.unconditional(conditional).to("cpu", dtype)
            blocks = preset.style_blocks if ADAPTER_PURPOSE[prompt.purpose] == "style" else None
            attached.uses.append(AdapterUse(adapter, prompt.scale, blocks))
            attached.embeddings.append((unconditional, conditional))
            if prompt.purpose == "style":
                encoder = encoder_name(preset)
                style = StyleEmbedding(
                    content_digest(embedding, encoder)[:CODE_LENGTH],
                    embedding,
                    encoder,
                    sources=max(1, len(prompt.images) + len(prompt.codes)),
                )
                attached.extras["style_code"] = style.code
                if codes:
                    attached.extras["style_codes"] = codes
                attached.png_chunks.update(style_png_chunks(style))
        return attached

    def redux_tokens(self, lease: Lease, base: BaseModel, prompt: ImagePrompt) -> torch.Tensor:
        """The prompt's images as Redux tokens, mixed by weight and strengthened by its scale (at a style
        reference's usual --sw, or a blend's, as they are)."""
        if prompt.codes or prompt.embeddings:
            raise InvalidRequest(
                f"Style codes hold an IP-Adapter's embedding, which {base.rules.label} models do not read: "
                "give the style as an image instead."
            )
        preset = self.presets.redux[base.family]
        device_config, offline = lease.device_config, lease.offline
        redux = lease.model(
            REDUX, preset.source, lambda: load_redux(preset, device_config, offline=offline),
            module=lambda loaded: loaded.weights,
        )  # fmt: skip
        with self.cache.gpu_lock:
            tokens = [redux.tokens(image.convert("RGB")) for image in prompt.images]
        weights = prompt.weights or (1.0,) * len(tokens)
        mixed = sum(weight * token for weight, token in zip(weights, tokens, strict=True)) / sum(weights)
        usual = style_scale(100) if prompt.purpose == "style" else BLEND_SCALE
        return mixed * (prompt.scale / usual)

    def embedding(self, adapter: IPAdapter, prompt: ImagePrompt, seed: int) -> tuple[torch.Tensor, list[str]]:
        """The prompt's images and codes as one embedding (float32, CPU), and the codes it used."""
        encoder = encoder_name(adapter.preset)
        embeddings = []
        for image in prompt.images:
            with self.cache.gpu_lock:
                embeddings.append(adapter.embed(image.convert("RGB")).to("cpu", torch.float32))
        codes = self.resolved_codes(prompt.codes, encoder, seed)
        for code in codes:
            embeddings.append(self.style_codes().load(code, encoder=encoder).tensor)
        embeddings.extend(prompt.embeddings)
        return mix_embeddings(embeddings, prompt.weights or None), codes

    def resolved_codes(self, typed: Sequence[str], encoder: str, seed: int) -> list[str]:
        """The codes as typed, each `random` replaced by a saved code drawn from the seed (so the seed makes
        the same picks again)."""
        draw = random.Random(seed)
        return [
            self.style_codes().random_code(draw, encoder=encoder)
            if code.strip().lower() == RANDOM_CODE
            else code
            for code in typed
        ]

    def style_codes(self) -> StyleCodes:
        if self.codes is None:
            raise InvalidRequest("This studio keeps no style codes: give the style as an image instead.")
        return self.codes

    # -- the adapters, from the cache ------------------------------------------------------------------

    def preset(self, base: BaseModel, purpose: Purpose) -> IPAdapterPreset:
        preset = self.presets.ip_adapter(base.architecture, ADAPTER_PURPOSE[purpose])
        if preset is not None:
            return preset
        model = base.architecture.upper()
        if purpose == "object":
            raise InvalidRequest(
                f"There are no IP-Adapter Plus weights for {model} models, so a character or object "
                "reference cannot be used with this model: add them to presets/ip_adapters.json (purpose "
                '"object"), or leave the reference out.'
            )
        raise InvalidRequest(
            f"There is no IP-Adapter for {model} models, so {WHAT[purpose]} cannot be used with this model: "
            "describe the style with presets and the prompt, or pick an SD 1.5 or SDXL model."
        )

    def adapter(self, lease: Lease, base: BaseModel, preset: IPAdapterPreset) -> IPAdapter:
        unet, device_config, offline = base.components["unet"], lease.device_config, lease.offline
        return lease.model(
            IP_ADAPTER,
            f"{preset.source}/{preset.weight}",
            lambda: load_ip_adapter(preset, unet, device_config, offline=offline),
            module=lambda a: a.weights,
        )


def resident_sight(cache: ModelCache, encoder: str = "", *, wait: bool = True) -> Sight | None:
    """What the image encoder of an IP-Adapter already in the cache sees of an image, as a taste profile
    keeps it (its projected image embedding): `encoder`'s where it is loaded (a profile's own), else a
    plain adapter's; None while no IP-Adapter is loaded: none is loaded for it. Not `wait`ing (an instant
    action: a rating), it sees nothing while a run holds the GPU."""
    adapters = cache.resident(IP_ADAPTER, wait=wait)
    if not adapters:
        return None
    # The profile's encoder first, then plain adapters: their embedding is what a taste embedding must be
    adapter = min(adapters, key=lambda a: (encoder_name(a.preset) != encoder, a.reads_patch_features))
    name = encoder_name(adapter.preset)

    def sight(image: Image.Image) -> Seen | None:
        if not cache.gpu_lock.acquire(blocking=wait):
            return None
        try:
            embedding = adapter.image_embedding(image.convert("RGB"))
        finally:
            cache.gpu_lock.release()
        return seen_by(name, embedding.float().cpu().numpy())

    return sight


def seen_now(cache: ModelCache, images: Sequence[Image.Image], encoder: str = "") -> list[Seen | None]:
    """What an IP-Adapter's encoder already in the cache sees of each image, without waiting for the GPU
    (an instant action); None for each where there is none, or a run holds the GPU."""
    sight = resident_sight(cache, encoder, wait=False)
    return [sight(image) if sight is not None else None for image in images]


def taste_prompt(
    cache: ModelCache, presets: Presets, base: BaseModel, taste: Profile, *, on_openvino: bool, prompts: int
) -> ImagePrompt | None:
    """The profile's taste embedding as an image prompt for this run, where it can be had for little: the
    base model's style IP-Adapter, whose encoder the profile learnt from, is already in the cache, and the
    run uses torch anyway (a GPU, or other image prompts); on OpenVINO alone it would move the run to torch
    for a nudge. None otherwise."""
    embedding = taste.taste_embedding()
    preset = presets.ip_adapter(base.architecture, "style")
    if embedding is None or preset is None or encoder_name(preset) != taste.encoder:
        return None
    if on_openvino and not prompts:
        return None
    loaded = [adapter for adapter in cache.resident(IP_ADAPTER) if adapter.preset == preset]
    if not loaded or loaded[0].reads_patch_features:
        return None
    if embedding.size != int(loaded[0].image_encoder.config.projection_dim):  # another encoder's, imported
        return None
    tensor = torch.tensor(embedding, dtype=torch.float32).reshape(1, -1)
    return ImagePrompt("taste", embeddings=(tensor,), scale=TASTE_SCALE)


REDUX_PURPOSES = {"style", "blend"}  # what Redux's tokens take: a look, not a subject to keep (--oref)


def takes_redux(presets: Presets, base: BaseModel, prompt: ImagePrompt) -> bool:
    """Whether the image prompt goes through its family's Redux (FLUX.1's), not an IP-Adapter."""
    return base.family in presets.redux and prompt.purpose in REDUX_PURPOSES


@torch.no_grad()  # like the call's own encoding: no autograd graph of the text encoders
def redux_conditioning(pipe: Any, arguments: dict[str, Any], tokens: list[torch.Tensor]) -> dict[str, Any]:
    """A text family's call `arguments` with the prompt as embeddings (the pipeline's own encoding of it)
    and Redux's `tokens` after them."""
    arguments = dict(arguments)
    prompt, length = arguments.pop("prompt"), arguments.pop("max_sequence_length")
    embeds, pooled, _ = pipe.encode_prompt(
        prompt=prompt, prompt_2=None, device=pipe._execution_device, max_sequence_length=length
    )
    images = [token.to(embeds.device, embeds.dtype) for token in tokens]
    return arguments | {"prompt_embeds": torch.cat([embeds, *images], dim=1), "pooled_prompt_embeds": pooled}


def guided(base: BaseModel, pipe: Any, guidance_scale: float) -> bool:
    """Whether a diffusers call of `pipe` (built on `base`) runs classifier-free guidance (so it takes
    negative embeddings): not for a family whose guidance is distilled, nor for an LCM UNet."""
    if base.rules.guidance != "cfg" or guidance_scale <= 1:
        return False
    return not base.has_unet or getattr(pipe.unet.config, "time_cond_proj_dim", None) is None
