"""A loaded base model: the components every task builds its pipeline around, shared, never copied."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from studio.core.families import FAMILIES, Family
from studio.core.models import ModelSource
from studio.core.presets import SamplerPreset


@dataclass
class BaseModel:
    """The loaded components of one diffusion model, shared by every task built on it."""

    source: ModelSource
    family: str  # a name in studio/core/families.py: "sd", "sdxl", "flux"
    pipeline_class_name: str  # what the checkpoint was saved as, e.g. StableDiffusionInpaintPipeline
    components: dict[str, Any]  # the scheduler among them only as a config holder
    # The checkpoint's own pipeline settings that are not components (FLUX.2 klein's `is_distilled`, SDXL's
    # `force_zeros_for_empty_prompt`), given to every pipeline built around it that takes them
    settings: dict[str, Any] = field(default_factory=dict)
    quantized: str | None = None  # the weight-only quantization its transformer was loaded with ("int8")
    # Components whose torch weights are let go while another backend (OpenVINO) runs them: read back from
    # disk before torch runs them again (the lease does both, openvino_backend.py says how).
    released: set[str] = field(default_factory=set)

    @property
    def rules(self) -> Family:
        """What its family does and cannot do."""
        return FAMILIES[self.family]

    @property
    def has_unet(self) -> bool:
        return self.rules.denoiser == "unet"

    @property
    def unet_config(self) -> Any:
        return self.components["unet"].config

    @property
    def vae_scale_factor(self) -> int:
        config = self.components["vae"].config
        if "temperal_downsample" in config:  # Qwen-Image's video autoencoder: a halving per down stage
            return 2 ** len(config.temperal_downsample)
        if "encoder_block_out_channels" in config:  # SANA's deep-compression autoencoder
            return 2 ** (len(config.encoder_block_out_channels) - 1)
        return 2 ** (len(config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        config = self.components["vae"].config
        return int(config.get("z_dim") or config.get("latent_channels"))  # Qwen-Image's autoencoder: z_dim

    @property
    def native_resolution(self) -> int:
        if not self.has_unet:  # a transformer has no size of its own: its autoencoder's, or the family's
            return int(self.components["vae"].config.get("sample_size") or self.rules.native_side)
        return int(self.unet_config.sample_size) * self.vae_scale_factor

    def resolution(self, source: ModelSource) -> int:
        """The side of the square the model works best at, reached through `source` (the request's: one
        model may be reached by a preset and by its path): the preset's, else what its UNet was made for."""
        return source.preset.resolution if source.preset else self.native_resolution

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this for the UNet's down- and up-sampling to line up
        (and of 8, which diffusers' pipelines require); a transformer's 2×2 latent patches, for it."""
        if not self.has_unet:
            return math.lcm(8, self.vae_scale_factor * 2)
        return math.lcm(8, self.vae_scale_factor * 2 ** (len(self.unet_config.block_out_channels) - 1))

    @property
    def architecture(self) -> str:
        """What adapter weights (ControlNets, IP-Adapters) must be made for: sd1, sd2 or sdxl."""
        if self.family != "sd":
            return self.family
        return "sd2" if int(self.unet_config.cross_attention_dim) == 1024 else "sd1"

    @property
    def edits(self) -> bool:
        """A checkpoint made for instruction editing (FLUX.1 Kontext, every FLUX.2 klein, Qwen-Image-Edit
        and its Plus): saved as one of its family's editing pipelines."""
        return self.pipeline_class_name in self.rules.editors

    @property
    def is_inpainting(self) -> bool:
        """A dedicated inpainting checkpoint: a 9-channel UNet, or a family's Fill model (FLUX.1 Fill)."""
        if self.has_unet:
            return int(self.unet_config.in_channels) == 9
        return self.pipeline_class_name == self.rules.pipelines.get("fill")

    def new_scheduler(self, sampler: SamplerPreset) -> Any:
        """A fresh scheduler for one request: schedulers are stateful, so requests never share one. A family
        that samples by flow matching gets the sampler's flow form (the caller checked it has one)."""
        import diffusers

        name, options = sampler.scheduler, sampler.options
        if self.rules.samplers == "flow":
            name, options = sampler.flow_scheduler, sampler.flow_options
        scheduler_class = getattr(diffusers, name)
        return scheduler_class.from_config(self.components["scheduler"].config, **options)

    def build(self, pipeline_class: type, scheduler: Any, **replacements: Any) -> Any:
        """A diffusers pipeline of `pipeline_class` around the shared components (no copy, no cast).

        `replacements` swap in other cached components, e.g. `unet=` an inpainting UNet.
        """
        expected, optional = pipeline_class._get_signature_keys(pipeline_class)
        modules = {name: self.components.get(name) for name in expected}
        modules.update(replacements, scheduler=scheduler)
        options = {name: value for name, value in self.settings.items() if name in optional}
        if "requires_safety_checker" in optional:
            options["requires_safety_checker"] = False
        if "add_watermarker" in optional:
            options["add_watermarker"] = False
        pipe = pipeline_class(**modules, **options)
        pipe.set_progress_bar_config(disable=True)
        return pipe
