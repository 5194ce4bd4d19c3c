"""Live: one frame, made again as the prompt and the sliders change — text to image, or image to image on a
sketch — fast enough to follow typing.

A frame is a text-to-image run, with everything one takes (long and weighted prompts, styles, --chaos,
--tile, LoRAs, image prompts), and what makes it quick:
- a one- or few-step model: the preset's live sibling (SD 1.5 → SDXS, SDXL → SDXL-Turbo), or a few-step
  LoRA (LCM, Hyper-SD) where a preset names one, at the live steps (`live` in presets/models.json);
- a live size: on a CPU half the model's side (a quarter of its pixels, shown scaled up), on a GPU its own;
- the fast decoder (TAESD), no previews;
- the prompts' embeddings kept per (model, LoRAs, prompt): moving a slider encodes nothing again;
- the seed the caller keeps: the same starting noise each frame, so a small edit makes a small change.

Which request is worth a frame (the newest of a visitor's) is the caller's to decide: studio/ui/live_tab.py,
with studio/core/latest_only.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageOps
from pydantic import Field

from pipelines.diffusion import Denoising, RunSettings, build_pipeline, refuse_inpainting_model
from pipelines.parts.common import IsCancelled, Progress, never_cancelled, no_progress
from pipelines.parts.images import check_image
from pipelines.parts.loras import LoraChoice
from pipelines.parts.previews import PreviewMode, PreviewSink, no_preview
from pipelines.text_to_image import ReferenceImages, TextToImagePipeline, TextToImageRequest
from studio.core.cache import BaseModel, Lease
from studio.core.metadata import GenerationParameters
from studio.core.presets import LiveSettings, Presets

LiveSize = Literal["auto", "half", "full"]
CPU_LIVE_SCALE = 0.5  # "auto" on a CPU: half the model's side (bench/live_bench.py measures why)
MIN_HALVED = 512  # "auto" halves models made for this side or more
STEPS_WITHOUT_LIVE_SETTINGS = 4  # a model with none: few steps, rough but quick


class LiveRequest(TextToImageRequest):
    num_images: int = Field(1, ge=1, le=1, title="Images")
    steps: int | None = Field(None, ge=1, le=8)  # None: the live model's live steps
    image: Image.Image | None = None  # a sketch: the frame follows it at `strength`
    strength: float = Field(0.7, ge=0.05, le=1.0, title="Sketch strength")
    live_size: LiveSize = "auto"  # auto: half the model's side on a CPU, the whole of it on a GPU
    previews: PreviewMode = "none"


@dataclass(frozen=True)
class LiveInputs:
    references: ReferenceImages
    sketch: Image.Image | None


def live_request(request: LiveRequest, presets: Presets) -> LiveRequest:
    """The request as its model's live settings make it: a full model swapped for its distilled sibling,
    or given its few-step LoRA with the sampler and guidance that LoRA wants; the live steps filled in.
    What the request sets itself stays."""
    preset = presets.models.get(request.model or presets.default_model)
    live = (preset.live if preset else None) or LiveSettings()
    if live.model is not None:
        preset = presets.models[live.model]
        live = preset.live or LiveSettings()
    updates: dict = {"model": preset.name if preset is not None else request.model}
    few_steps = min((preset or presets.other_models).steps, STEPS_WITHOUT_LIVE_SETTINGS)
    updates["steps"] = request.steps or live.steps or few_steps
    if live.lora is not None and LoraChoice.parse(live.lora).name not in request.lora_names():
        updates["loras"] = (*request.loras, live.lora)
    if request.sampler is None and live.sampler is not None:
        updates["sampler"] = live.sampler
    if request.guidance_scale is None and live.guidance_scale is not None:
        updates["guidance_scale"] = live.guidance_scale
    return request.model_copy(update=updates)


def live_side(resolution: int, live_size: LiveSize, on_cpu: bool) -> int:
    """The side of the square a frame's area matches: "auto" halves it on a CPU, for a model made for 512
    pixels or more (below, pictures fall apart)."""
    half = live_size == "half" or (live_size == "auto" and on_cpu and resolution >= MIN_HALVED)
    return round(resolution * CPU_LIVE_SCALE) if half else resolution


class LivePipeline(TextToImagePipeline):
    task = "live"
    request_type = LiveRequest
    shows_previews = False
    encodes_image = True  # a sketch is encoded by the autoencoder
    fast_decoder_everywhere = True  # TAESD where it can be had, on a GPU too
    steered_by_taste = False  # a frame answers a keystroke: drafts would multiply the wait for it

    def generate(
        self,
        request: LiveRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
        preview: PreviewSink = no_preview,
    ) -> Iterator[Any]:
        yield from super().generate(live_request(request, self.presets), progress, is_cancelled, preview)

    def frame(self, request: LiveRequest, is_cancelled: IsCancelled = never_cancelled) -> Any:
        """The one frame of `request` (the run ends, its lease too, before it is handed over)."""
        return self(request, is_cancelled=is_cancelled)[0]

    def check_inputs(self, request: LiveRequest) -> LiveInputs:  # type: ignore[override]
        sketch = None if request.image is None else check_image(request.image, "sketch")
        return LiveInputs(super().check_inputs(request), sketch)

    def strength(self, request: LiveRequest, inputs: LiveInputs) -> float | None:  # type: ignore[override]
        return None if inputs.sketch is None else request.strength

    def extras(self, request: LiveRequest, inputs: LiveInputs) -> dict:  # type: ignore[override]
        extras = super().extras(request, inputs.references)
        if inputs.sketch is not None:
            extras["sketch_strength"] = request.strength
        return extras

    def image_prompts(self, request: LiveRequest, inputs: LiveInputs) -> list:  # type: ignore[override]
        return super().image_prompts(request, inputs.references)

    def prepare(  # type: ignore[override]
        self, lease: Lease, base: BaseModel, request: LiveRequest, inputs: LiveInputs, run: RunSettings
    ) -> Denoising:
        refuse_inpainting_model(base, run, "Live runs regular models; pick another.")
        on_cpu = lease.device_config.device.type == "cpu"
        side = live_side(base.resolution(run.source), request.live_size, on_cpu)
        size = self.presets.aspect_ratio(request.aspect_ratio).size_for(side, base.size_multiple)
        extras = {"live_size": f"{size[0]}x{size[1]}"}
        if inputs.sketch is None:
            pipe = build_pipeline(base, run, self.presets, "txt2img")
            return Denoising(pipe, size, {"width": size[0], "height": size[1]}, extras)
        sketch = ImageOps.fit(inputs.sketch, size, Image.Resampling.LANCZOS)
        pipe = build_pipeline(base, run, self.presets, "img2img")
        return Denoising(pipe, size, {"image": sketch, "strength": request.strength}, extras)


def enhanced_live_values(frame: GenerationParameters, presets: Presets, chosen_model: str | None) -> dict:
    """Enhance: what Text to Image runs to render a frame properly — the frame's prompt, styles, seed and
    shape on the model the visitor chose (not its live sibling), at that model's steps, guidance and size,
    decoded by the full VAE."""
    model = chosen_model or presets.default_model
    defaults = presets.defaults_for(model)
    extras = frame.extras
    return {
        "prompt": frame.typed_prompt,
        "negative_prompt": frame.typed_negative_prompt,
        "styles": frame.styles,
        "seed": frame.seed,
        "model": model,
        "steps": defaults.steps,
        "guidance_scale": defaults.guidance_scale,
        "sampler": defaults.sampler,
        "aspect_ratio": extras.get("aspect_ratio", TextToImageRequest.default("aspect_ratio")),
        "tile": bool(extras.get("tile")),
        "loras": ", ".join(extras.get("loras", [])),
        "chaos": 0,  # the frame records the settings --chaos drew for it
        "stylize": extras.get("stylize", TextToImageRequest.default("stylize")),
        "decoder": "full",
    }
