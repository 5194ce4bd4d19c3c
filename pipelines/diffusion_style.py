"""Diffusion style transfer: the content image redrawn in a style, its structure held by a ControlNet.

- Structure: a map of the content image (Canny edges, soft edges, line art or depth, made by controlnet-aux
  detectors) steers a ControlNet, so outlines and layout survive however far the style goes.
- Style: a reference image through an IP-Adapter that reaches the style blocks only (InstantStyle), so the
  reference's colours and brushwork come through but not its subject; and/or style presets and the prompt.
- Runs on the base model already in the cache; ControlNets, IP-Adapters and detectors are cache entries too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import ConfigDict, Field, model_validator

from pipelines.common import (
    IsCancelled,
    Progress,
    StepReporter,
    generator_for,
    image_seed,
    never_cancelled,
    no_progress,
)
from pipelines.diffusion import (
    DiffusionRequest,
    GeneratedImage,
    check_prompt_side,
    pipeline_class,
    record,
    resolve_run,
)
from pipelines.images import check_image, resized
from studio.control_models import (
    controlnet_aux_class,
    detector_module,
    ip_adapter_applied,
    load_controlnet,
    load_detector,
    load_ip_adapter,
)
from studio.errors import InvalidRequest
from studio.model_cache import BaseModel, CacheKey, ModelCache
from studio.models import ModelSource
from studio.presets import Presets

STRUCTURES = {  # what the user picks -> what it is called in the UI and in the PNG
    "canny": "Canny edges",
    "softedge": "Soft edges (HED)",
    "lineart": "Line art",
    "depth": "Depth",
    "none": "None (image to image)",
}


class DiffusionStyleRequest(DiffusionRequest):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None  # the content
    structure: Literal["canny", "softedge", "lineart", "depth", "none"] = "canny"
    structure_strength: float = Field(0.8, ge=0, le=2)  # ControlNet conditioning scale
    canny_low: int = Field(100, ge=1, le=255)
    canny_high: int = Field(200, ge=1, le=255)
    style_image: Image.Image | None = None  # the reference whose style is taken (IP-Adapter)
    style_strength: float = Field(0.8, ge=0, le=1.5)  # IP-Adapter scale on the style blocks
    denoising_strength: float = Field(0.9, ge=0.05, le=1)  # 1: only the structure map keeps the layout

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> DiffusionStyleRequest:
        if self.canny_low >= self.canny_high:
            raise ValueError("canny_low must be below canny_high")
        return self


def fit_to_area(size: tuple[int, int], resolution: int, multiple: int) -> tuple[int, int]:
    """`size` scaled to about resolution² pixels, the model's training size; sides multiples of `multiple`."""
    width, height = size
    scale = resolution / math.sqrt(width * height)
    return (
        max(multiple, round(width * scale / multiple) * multiple),
        max(multiple, round(height * scale / multiple) * multiple),
    )


def canny_map(image: Image.Image, low: int, high: int) -> Image.Image:
    """Canny edges of `image` at its own size, white on black (controlnet-aux's detector, no resizing)."""
    CannyDetector = controlnet_aux_class("controlnet_aux.canny", "CannyDetector")  # noqa: N806
    pixels = np.asarray(image.convert("RGB"))
    edges = CannyDetector()(
        pixels, low, high, detect_resolution=min(image.size), image_resolution=min(image.size)
    )
    if edges.shape[:2] != pixels.shape[:2]:  # controlnet-aux rounds sizes to multiples of 64
        edges = np.asarray(Image.fromarray(edges).resize(image.size, Image.Resampling.NEAREST))
    return Image.fromarray(edges).convert("RGB")


class DiffusionStylePipeline:
    task = "style_transfer"

    def __init__(self, cache: ModelCache, presets: Presets) -> None:
        self.cache = cache
        self.presets = presets

    def check_inputs(
        self, request: DiffusionStyleRequest
    ) -> tuple[ModelSource, Image.Image, Image.Image | None]:
        image = check_image(request.image, "content image")
        style_image = None if request.style_image is None else check_image(request.style_image, "style image")
        if style_image is None and not request.prompt.strip() and not request.styles:
            raise InvalidRequest("Give the style: a style image, style presets, or a prompt describing it.")
        return check_prompt_side(request, self.presets, prompt_required=False), image, style_image

    # -- the models a run needs, from the cache ------------------------------------------------------------

    def controlnet(self, base: BaseModel, structure: str) -> Any:
        preset = self.presets.controlnet(base.architecture, structure)
        if preset is None:
            have = sorted(
                c.structure for c in self.presets.controlnets.values() if c.architecture == base.architecture
            )
            raise InvalidRequest(
                f"There is no {STRUCTURES[structure]} ControlNet for {base.architecture.upper()} models "
                f"(available: {', '.join(have) or 'none'}). Pick another structure or add one to "
                "presets/controlnets.json."
            )
        key = CacheKey(preset.source, "controlnet", self.cache.device_config.dtype_name)
        device_config, offline = self.cache.device_config, self.cache.offline
        return self.cache.model(
            key, lambda: load_controlnet(preset, device_config, offline=offline), offloadable=True
        )

    def ip_adapter(self, base: BaseModel) -> Any:
        preset = self.presets.ip_adapter(base.architecture)
        if preset is None:
            raise InvalidRequest(
                f"There is no IP-Adapter for {base.architecture.upper()} models, so a style image cannot be "
                "used with this model: describe the style with presets and the prompt, or pick an SD 1.5 or "
                "SDXL model."
            )
        key = CacheKey(f"{preset.source}/{preset.weight}", "ip_adapter", self.cache.device_config.dtype_name)
        unet, device_config, offline = base.components["unet"], self.cache.device_config, self.cache.offline
        return self.cache.model(
            key,
            lambda: load_ip_adapter(preset, unet, device_config, offline=offline),
            module=lambda a: a.weights,
            offloadable=True,
        )

    def structure_map(self, image: Image.Image, request: DiffusionStyleRequest) -> Image.Image | None:
        """The map the ControlNet follows, at the image's size (None when no structure is held)."""
        if request.structure == "none":
            return None
        if request.structure == "canny":
            return canny_map(image, request.canny_low, request.canny_high)
        key = CacheKey(self.presets.annotators, f"detector:{request.structure}", "float32")
        device_config, offline = self.cache.device_config, self.cache.offline
        detector = self.cache.model(
            key,
            lambda: load_detector(request.structure, self.presets.annotators, device_config, offline=offline),
            module=detector_module,
        )
        with self.cache.gpu_lock:
            detected = detector(image, detect_resolution=min(image.size), image_resolution=min(image.size))
        return resized(detected.convert("RGB"), image.size)

    def preview_structure(self, request: DiffusionStyleRequest) -> Image.Image | None:
        """The structure map for the UI's preview, at about the size a 512-pixel model would work at."""
        image = check_image(request.image, "content image")
        return self.structure_map(resized(image, fit_to_area(image.size, 512, 64)), request)

    # -- the run ------------------------------------------------------------------------------------------

    def __call__(
        self,
        request: DiffusionStyleRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> list[GeneratedImage]:
        return list(self.generate(request, progress, is_cancelled))

    def generate(
        self,
        request: DiffusionStyleRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
    ) -> Iterator[GeneratedImage]:
        # 1. Check inputs and fill in the model preset's defaults
        source, image, style_image = self.check_inputs(request)
        run = resolve_run(request, source, self.presets)
        # Only steps × strength steps run; at least one must.
        run = dataclasses.replace(run, steps=max(run.steps, math.ceil(1 / request.denoising_strength)))
        sampler = self.presets.sampler(run.sampler)
        reporter = StepReporter(progress, is_cancelled, request.num_images)
        reporter.check()

        with self.cache.use(source) as base:
            # 2. The ControlNet and the IP-Adapter this request needs, from the cache
            replacements: dict[str, Any] = {}
            if request.structure != "none":
                replacements["controlnet"] = self.controlnet(base, request.structure)
            adapter = None if style_image is None else self.ip_adapter(base)
            if adapter is not None:
                replacements.update(
                    image_encoder=adapter.image_encoder, feature_extractor=adapter.feature_extractor
                )

            # 3. The content at about the model's native area, and its structure map at the same size
            resolution = source.preset.resolution if source.preset else base.native_resolution
            content = resized(image, fit_to_area(image.size, resolution, base.size_multiple))
            control_image = self.structure_map(content, request)

            # 4. A pipeline around the shared components, with this request's own scheduler
            task = "img2img" if control_image is None else "controlnet_img2img"
            pipe = base.build(pipeline_class(base.family, task), base.new_scheduler(sampler), **replacements)
            options: dict[str, Any] = {}
            extras: dict[str, Any] = {
                "mode": "diffusion",
                "structure": request.structure,
                "denoising_strength": request.denoising_strength,
            }
            if control_image is not None:
                options.update(
                    control_image=control_image, controlnet_conditioning_scale=request.structure_strength
                )
                extras["structure_strength"] = request.structure_strength
            if adapter is not None:
                options["ip_adapter_image"] = style_image
                extras.update(
                    style_image=f"{style_image.width}x{style_image.height}",
                    style_strength=request.style_strength,
                )

            # 5. Denoise image by image, image i with seed s+i; the IP-Adapter is installed for the call only
            for index in range(request.num_images):
                reporter.image_index = index

                def call(index: int = index) -> Any:  # a fresh generator on each attempt
                    applied = (
                        nullcontext()
                        if adapter is None
                        else ip_adapter_applied(
                            base.components["unet"], adapter, request.style_strength, pipe._execution_device
                        )
                    )
                    with applied:
                        return pipe(
                            prompt=run.prompt,
                            negative_prompt=run.negative_prompt or None,
                            image=content,
                            strength=request.denoising_strength,
                            num_inference_steps=run.steps,
                            guidance_scale=run.guidance_scale,
                            generator=generator_for(image_seed(run.seed, index)),
                            callback_on_step_end=reporter,
                            **options,
                        )

                output = self.cache.denoise(base, content.size, call, pipe=pipe)
                # 6. Back at the content's size, with everything needed to make it again
                parameters = record(self.task, request, run, index, image.size, **extras)
                yield GeneratedImage(resized(output.images[0], image.size), parameters)
