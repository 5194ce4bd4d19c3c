"""Diffusion style transfer: the content image redrawn in a style, its structure held by a ControlNet.

- Structure: a map of the content image (Canny edges, soft edges, line art or depth, made by controlnet-aux
  detectors) steers a ControlNet, so outlines and layout survive however far the style goes.
- Style: a reference image through an IP-Adapter that reaches the style blocks only (InstantStyle), so the
  reference's colours and brushwork come through but not its subject; and/or style presets and the prompt.
- Runs on the base model already in the cache; ControlNets, IP-Adapters and detectors are cache entries too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import ConfigDict, Field, model_validator

from pipelines.diffusion import Denoising, DiffusionTask, GenerationRequest, RunSettings, build_pipeline
from pipelines.parts.image_prompts import ImagePrompt
from pipelines.parts.images import InputImage, check_image, resized
from studio.core.cache import BaseModel, Lease
from studio.core.cache.kinds import CONTROLNET, DETECTOR
from studio.core.control_models import controlnet_aux_class, detector_module, load_controlnet, load_detector
from studio.core.errors import InvalidRequest

STRUCTURES = {  # what the user picks -> what it is called in the UI and in the PNG
    "canny": "Canny edges",
    "softedge": "Soft edges (HED)",
    "lineart": "Line art",
    "depth": "Depth",
    "none": "None (image to image)",
}


class DiffusionStyleRequest(GenerationRequest):
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


@dataclass(frozen=True)
class StyleInputs(InputImage):
    style_image: Image.Image | None  # the reference whose style the IP-Adapter takes


class DiffusionStylePipeline(DiffusionTask[DiffusionStyleRequest]):
    task = "style_transfer"
    request_type = DiffusionStyleRequest
    encodes_image = True
    torch_only = "ControlNet's residuals are not converted"

    def check_inputs(self, request: DiffusionStyleRequest) -> StyleInputs:
        image = check_image(request.image, "content image")
        style_image = None if request.style_image is None else check_image(request.style_image, "style image")
        if style_image is None and not request.prompt.strip() and not request.styles:
            raise InvalidRequest("Give the style: a style image, style presets, or a prompt describing it.")
        return StyleInputs(image, style_image)

    def strength(self, request: DiffusionStyleRequest, inputs: StyleInputs) -> float:
        return request.denoising_strength

    def extras(self, request: DiffusionStyleRequest, inputs: StyleInputs) -> dict[str, Any]:
        extras: dict[str, Any] = {
            "mode": "diffusion",
            "structure": request.structure,
            "denoising_strength": request.denoising_strength,
        }
        if request.structure != "none":
            extras["structure_strength"] = request.structure_strength
        if request.structure == "canny":  # the edges the ControlNet followed
            extras.update(canny_low=request.canny_low, canny_high=request.canny_high)
        if inputs.style_image is not None:
            extras["style_image"] = f"{inputs.style_image.width}x{inputs.style_image.height}"
            extras["style_strength"] = request.style_strength
        return extras

    def image_prompts(self, request: DiffusionStyleRequest, inputs: StyleInputs) -> list[ImagePrompt]:
        if inputs.style_image is None:
            return []
        return [ImagePrompt("style", (inputs.style_image,), scale=request.style_strength)]

    def prepare(
        self,
        lease: Lease,
        base: BaseModel,
        request: DiffusionStyleRequest,
        inputs: StyleInputs,
        run: RunSettings,
    ) -> Denoising:
        # The ControlNet this request needs, from the cache (the IP-Adapter comes with `image_prompts`)
        replacements: dict[str, Any] = {}
        if request.structure != "none":
            replacements["controlnet"] = self.controlnet(lease, base, request.structure)

        # The content at about the model's native area, and its structure map at the same size
        content = resized(
            inputs.image, fit_to_area(inputs.image.size, base.resolution(run.source), base.size_multiple)
        )
        control_image = self.structure_map(content, request)
        kind = "img2img" if control_image is None else "controlnet_img2img"
        pipe = build_pipeline(base, run, self.presets, kind, **replacements)
        arguments: dict[str, Any] = {"image": content, "strength": request.denoising_strength}
        if control_image is not None:
            arguments.update(
                control_image=control_image, controlnet_conditioning_scale=request.structure_strength
            )
        return Denoising(pipe, content.size, arguments)

    def finish(self, image: Image.Image, inputs: StyleInputs) -> Image.Image:
        return resized(image, inputs.image.size)

    # -- the models a run needs, from the cache ------------------------------------------------------------

    def controlnet(self, lease: Lease, base: BaseModel, structure: str) -> Any:
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
        device_config, offline = lease.device_config, lease.offline
        return lease.model(
            CONTROLNET, preset.source, lambda: load_controlnet(preset, device_config, offline=offline)
        )

    def structure_map(self, image: Image.Image, request: DiffusionStyleRequest) -> Image.Image | None:
        """The map the ControlNet follows, at the image's size (None when no structure is held)."""
        if request.structure == "none":
            return None
        if request.structure == "canny":
            return canny_map(image, request.canny_low, request.canny_high)
        annotators = self.presets.annotators
        with self.cache.lease() as lease, self.cache.gpu_lock:
            device_config, offline = lease.device_config, lease.offline
            detector = lease.model(
                DETECTOR,
                annotators,
                lambda: load_detector(request.structure, annotators, device_config, offline=offline),
                part=request.structure,
                module=detector_module,
            )
            detected = detector(image, detect_resolution=min(image.size), image_resolution=min(image.size))
        return resized(detected.convert("RGB"), image.size)

    def preview_structure(self, request: DiffusionStyleRequest) -> Image.Image | None:
        """The structure map for the UI's preview, at about the size a 512-pixel model would work at."""
        image = check_image(request.image, "content image")
        return self.structure_map(resized(image, fit_to_area(image.size, 512, 64)), request)
