"""The extra models of image prompts and diffusion style transfer: ControlNets, IP-Adapters, FLUX.1 Redux
and structure detectors.

They load through the same offline-aware path as base models (`load_weights`) and live in the shared cache
as entries of their own. An IP-Adapter is never installed into the shared UNet for good:
`ip_adapters_applied` swaps its attention processors in for one denoising call, under the GPU lock, and
restores the UNet after, so every other task keeps seeing the plain model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from studio.core.devices import DeviceConfig
from studio.core.models import load_weights, weights_source
from studio.core.presets import ControlNetPreset, IPAdapterPreset, ReduxPreset

PRESETS_HINT = "or set a local folder as its source in presets/{file} (--presets to use another folder)."


def load_controlnet(preset: ControlNetPreset, device_config: DeviceConfig, *, offline: bool) -> Any:
    from diffusers import ControlNetModel

    source = weights_source(f"ControlNet {preset.name!r}", preset.source)

    def load(local_only: bool) -> Any:
        options: dict[str, Any] = {"dtype": device_config.dtype}
        if source.kind == "hub":
            options["local_files_only"] = local_only
        return ControlNetModel.from_pretrained(source.location, **options)

    # In RAM: the model cache brings it to the GPU when its budget holds it.
    return load_weights(source, offline, load, PRESETS_HINT.format(file="controlnets.json"))


@dataclass
class IPAdapter:
    """An IP-Adapter ready to be applied to UNets of its architecture."""

    preset: IPAdapterPreset
    processors: dict[
        str, Any
    ]  # attention processor by UNet processor name, IP-Adapter ones on cross-attention
    projection: torch.nn.Module  # image embedding -> extra cross-attention tokens
    image_encoder: Any  # CLIPVisionModelWithProjection
    feature_extractor: Any  # CLIPImageProcessor at the encoder's input size
    weights: torch.nn.ModuleList  # every module above that holds weights, for sizes and devices

    @property
    def reads_patch_features(self) -> bool:
        """IP-Adapter Plus reads the encoder's patch features (its penultimate hidden states); the plain one
        its projected image embedding."""
        from diffusers.models.embeddings import ImageProjection

        return not isinstance(self.projection.image_projection_layers[0], ImageProjection)

    @torch.inference_mode()
    def embed(self, image: Any) -> torch.Tensor:
        """What the adapter reads of `image`, as diffusers' pipelines make it: 1×D for a plain adapter,
        1×T×H for Plus. Call under the GPU lock; it runs where the encoder is."""
        return self._encoded(self._pixels(image))

    @torch.inference_mode()
    def image_embedding(self, image: Any) -> torch.Tensor:
        """The encoder's projected image embedding of `image` (1×D: what a plain adapter reads), whatever
        this adapter reads. Call under the GPU lock."""
        return self.image_encoder(self._on_encoder(self._pixels(image))).image_embeds

    @torch.inference_mode()
    def unconditional(self, embedding: torch.Tensor) -> torch.Tensor:
        """The embedding classifier-free guidance moves away from: zeros, or for Plus the patch features of
        a blank input, as diffusers makes them."""
        if not self.reads_patch_features:
            return torch.zeros_like(embedding)
        size = self.feature_extractor.crop_size
        return self._encoded(torch.zeros(1, 3, size["height"], size["width"]))

    def _pixels(self, image: Any) -> torch.Tensor:
        return self.feature_extractor(image, return_tensors="pt").pixel_values

    def _on_encoder(self, pixel_values: torch.Tensor) -> torch.Tensor:
        parameter = next(self.image_encoder.parameters())
        return pixel_values.to(parameter.device, parameter.dtype)

    def _encoded(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixels = self._on_encoder(pixel_values)
        if self.reads_patch_features:
            return self.image_encoder(pixels, output_hidden_states=True).hidden_states[-2]
        return self.image_encoder(pixels).image_embeds


def _split_state_dict(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """An IP-Adapter .safetensors file, split into the two halves diffusers' converters take."""
    from safetensors import safe_open

    state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    with safe_open(str(path), framework="pt", device="cpu") as weights:
        for key in weights.keys():  # noqa: SIM118 (safe_open is not a dict)
            part, _, name = key.partition(".")
            if part in state:
                state[part][name] = weights.get_tensor(key)
    if not state["image_proj"] or not state["ip_adapter"]:
        raise ValueError(f"{path.name} has no image_proj/ip_adapter weights: it is not an IP-Adapter")
    return state


def load_ip_adapter(
    preset: IPAdapterPreset, unet: Any, device_config: DeviceConfig, *, offline: bool
) -> IPAdapter:
    """The IP-Adapter of `preset`, its processors built for UNets shaped like `unet` (left untouched)."""
    from diffusers.models.embeddings import MultiIPAdapterImageProjection
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    source = weights_source(f"IP-Adapter {preset.name!r}", preset.source)

    def load(local_only: bool) -> tuple[dict[str, dict[str, torch.Tensor]], Any]:
        if source.kind == "folder":
            weight_file = Path(source.location) / preset.weight
            if not weight_file.is_file():
                raise FileNotFoundError(f"{weight_file} does not exist")
        else:
            from huggingface_hub import hf_hub_download

            weight_file = Path(hf_hub_download(preset.source, preset.weight, local_files_only=local_only))
        encoder = CLIPVisionModelWithProjection.from_pretrained(
            source.location,
            subfolder=preset.image_encoder,
            dtype=device_config.dtype,
            local_files_only=local_only or source.kind == "folder",
        )
        return _split_state_dict(weight_file), encoder

    state, encoder = load_weights(source, offline, load, PRESETS_HINT.format(file="ip_adapters.json"))
    processors = unet._convert_ip_adapter_attn_to_diffusers([state], low_cpu_mem_usage=False)
    projection = MultiIPAdapterImageProjection(
        [unet._convert_ip_adapter_image_proj_to_diffusers(state["image_proj"], low_cpu_mem_usage=False)]
    )
    weighted = [p for p in processors.values() if isinstance(p, torch.nn.Module)]
    weights = torch.nn.ModuleList([projection, encoder, *weighted])
    weights.to(dtype=device_config.dtype)  # in RAM: the model cache brings it to the GPU when it fits
    size = encoder.config.image_size
    return IPAdapter(
        preset=preset,
        processors=processors,
        projection=projection,
        image_encoder=encoder,
        feature_extractor=CLIPImageProcessor(size=size, crop_size=size),
        weights=weights,
    )


@dataclass
class Redux:
    """FLUX.1 Redux's image side (its pipeline loaded without text encoders: the base model's read the
    prompt): SigLIP, and the embedder that makes its features prompt tokens of T5's width."""

    pipe: Any  # a FluxPriorReduxPipeline
    weights: torch.nn.ModuleList  # what the cache moves and counts: the encoder and the embedder

    @torch.no_grad()
    def tokens(self, image: Any) -> torch.Tensor:
        """One image's prompt tokens (1 × 729 × T5's width for the real model), float32 on the CPU."""
        encoder = self.pipe.image_encoder
        features = self.pipe.encode_image(image, encoder.device, 1)
        return self.pipe.image_embedder(features).image_embeds.to("cpu", torch.float32)


def load_redux(preset: ReduxPreset, device_config: DeviceConfig, *, offline: bool) -> Redux:
    from diffusers import FluxPriorReduxPipeline

    source = weights_source(f"Redux {preset.name!r}", preset.source)
    no_text = dict.fromkeys(("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"))

    def load(local_only: bool) -> Any:
        return FluxPriorReduxPipeline.from_pretrained(
            source.location, dtype=device_config.dtype, local_files_only=local_only, **no_text
        )

    pipe = load_weights(source, offline, load, PRESETS_HINT.format(file="redux.json"))
    pipe.set_progress_bar_config(disable=True)
    return Redux(pipe, torch.nn.ModuleList([pipe.image_encoder, pipe.image_embedder]))


@dataclass(frozen=True)
class AdapterUse:
    """One IP-Adapter's part in a denoising call: its scale, and the attention blocks it reaches."""

    adapter: IPAdapter
    scale: float
    blocks: tuple[str, ...] | None = None  # processor name prefixes; None: every block (a blend, an --oref)

    def scale_at(self, processor_name: str) -> float:
        reaches = self.blocks is None or processor_name.startswith(self.blocks)
        return self.scale if reaches else 0.0


@contextmanager
def ip_adapters_applied(
    unet: Any, uses: Sequence[AdapterUse], device: torch.device | None = None
) -> Iterator[None]:
    """`unet` with the adapters of `uses` installed side by side (their image embeddings passed in the same
    order), each reaching its own blocks, then restored.

    Call under the GPU lock: the UNet is shared with every other task. `device` is where the UNet computes:
    the adapters' layers go there, since offload hooks put on the UNet earlier do not move them.
    """
    if device is not None:
        for use in uses:
            use.adapter.projection.to(device)
            for processor in use.adapter.processors.values():
                if isinstance(processor, torch.nn.Module):
                    processor.to(device)
    original_processors = unet.attn_processors
    original_projection = unet.encoder_hid_proj
    original_hid_type = unet.config.encoder_hid_dim_type
    installed = {name: _processor_for(name, uses) for name in uses[0].adapter.processors}
    unet.set_attn_processor(installed)  # set_attn_processor empties the dict it is given
    from diffusers.models.embeddings import MultiIPAdapterImageProjection

    unet.encoder_hid_proj = MultiIPAdapterImageProjection(
        [layer for use in uses for layer in use.adapter.projection.image_projection_layers]
    )
    unet.config.encoder_hid_dim_type = "ip_image_proj"
    try:
        yield
    finally:  # the projection first: IP-Adapter Plus's has attention layers of its own, which would count
        unet.encoder_hid_proj = original_projection
        unet.config.encoder_hid_dim_type = original_hid_type
        unet.set_attn_processor(original_processors)


def _processor_for(name: str, uses: Sequence[AdapterUse]) -> Any:
    """The attention processor `name` with every adapter of `uses`: the adapter's own for one (its scale
    set), else one that attends to each adapter's tokens with that adapter's layers, shared, not copied."""
    processors = [use.adapter.processors[name] for use in uses]
    first = processors[0]
    if not hasattr(first, "scale"):  # self-attention: no image tokens reach it
        return first
    scales = [use.scale_at(name) for use in uses]
    if len(uses) == 1:
        first.scale = scales
        return first
    with torch.device("meta"):  # its own layers are replaced at once: make them without memory
        combined = type(first)(
            hidden_size=first.hidden_size,
            cross_attention_dim=first.cross_attention_dim,
            num_tokens=[tokens for processor in processors for tokens in processor.num_tokens],
            scale=scales,
        )
    combined.to_k_ip = torch.nn.ModuleList(layer for processor in processors for layer in processor.to_k_ip)
    combined.to_v_ip = torch.nn.ModuleList(layer for processor in processors for layer in processor.to_v_ip)
    return combined


# -- structure detectors -----------------------------------------------------------------------------------

DETECTORS = {  # structure -> (controlnet_aux module, class) of the detectors that need weights
    "softedge": ("controlnet_aux.hed", "HEDdetector"),
    "lineart": ("controlnet_aux.lineart", "LineartDetector"),
    "depth": ("controlnet_aux.midas", "MidasDetector"),
}


def controlnet_aux_class(module_name: str, class_name: str) -> type:
    """A class from controlnet-aux, whose package import warns about optional extras we do not use."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(importlib.import_module(module_name), class_name)


def load_detector(structure: str, location: str, device_config: DeviceConfig, *, offline: bool) -> Any:
    """A controlnet-aux detector for `structure` with its weights from `location` (hub id or folder)."""
    detector_class = controlnet_aux_class(*DETECTORS[structure])
    source = weights_source(f"The {structure} detector's weights", location)

    def load(local_only: bool) -> Any:  # a folder path is read directly; local_files_only is for the hub
        return detector_class.from_pretrained(source.location, local_files_only=local_only)

    hint = "or set a local copy of that repository as 'annotators' in presets/controlnets.json."
    return load_weights(source, offline, load, hint)  # in RAM: the cache moves it to the device


def detector_module(detector: Any) -> torch.nn.Module:
    """The torch modules inside a controlnet-aux detector, for its size and device."""
    return torch.nn.ModuleList(v for v in vars(detector).values() if isinstance(v, torch.nn.Module))
