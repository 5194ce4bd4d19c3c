"""Upscale: super-resolution in tiles, optionally followed by a tiled low-strength diffusion pass.

- Fast: a Real-ESRGAN-family network (shipped in a package, so it works offline), any upscaler weights the
  user put in the upscalers folder, or plain Lanczos resampling. Tiled, so the network's memory follows the
  tile size, not the image; Stop is checked between tiles.
- Creative (what others call "Ultimate SD Upscale"): after super-resolution, image to image at low
  strength on tiles of the base model's native size, on the model already in the cache, seams hidden by
  overlap and feathered blending.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import ConfigDict, Field

from pipelines.diffusion import (
    Denoising,
    DiffusionTask,
    GeneratedImage,
    GenerationRequest,
    RunSettings,
    build_pipeline,
    check_prompt_side,
    refuse_inpainting_model,
)
from pipelines.parts.common import IsCancelled, Progress, never_cancelled, no_progress
from pipelines.parts.decoders import DecoderChoice
from pipelines.parts.images import InputImage, check_image, resized, to_array, to_image, working_size
from pipelines.parts.previews import PreviewMode, PreviewSink, no_preview
from pipelines.parts.prompt_parameters import ReadsPromptParameters
from pipelines.parts.recording import derived_parameters, source_extras
from pipelines.parts.tiling import run_tiled, tile_grid
from pipelines.task import Task
from studio.core.cache import BaseModel, Lease, ModelCache
from studio.core.cache.kinds import UPSCALER
from studio.core.errors import InvalidRequest, ModelUnavailable, RunCancelled
from studio.core.presets import Presets
from studio.core.upscaler_models import (
    UPSCALER_SUFFIXES,
    download_upscaler,
    load_packaged_upscaler,
    load_upscaler_file,
    packaged_upscalers,
)

LANCZOS = "Lanczos (no model)"
DEFAULT_UPSCALER = "Real-ESRGAN x4plus"
MAX_OUTPUT_SIDE = 8192
UPSCALE_EXTRAS = ("upscaler", "upscale", "creative_strength")  # what a source's earlier upscale recorded


class UpscaleRequest(GenerationRequest):
    """What to enlarge and how; the prompt fields (LoRAs, --tile...) are used by the creative pass only."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None
    upscaler: str = DEFAULT_UPSCALER
    scale: float = Field(4, ge=1, le=8)
    target_width: int = Field(0, ge=0, le=MAX_OUTPUT_SIDE)  # 0: from the scale (or from target_height)
    target_height: int = Field(0, ge=0, le=MAX_OUTPUT_SIDE)
    tile_size: int = Field(256, ge=64, le=1024)  # input pixels per super-resolution tile
    mode: Literal["fast", "creative"] = "fast"
    creative_strength: float = Field(0.3, ge=0.05, le=0.8)
    num_images: int = Field(1, ge=1, le=1)
    decoder: DecoderChoice = "full"  # detail is what the creative pass is for
    previews: PreviewMode = "off"  # a tile's preview is not the picture


def output_size(size: tuple[int, int], request: UpscaleRequest) -> tuple[int, int]:
    width, height = size
    if request.target_width and request.target_height:
        return request.target_width, request.target_height
    if request.target_width:
        return request.target_width, round(height * request.target_width / width)
    if request.target_height:
        return round(width * request.target_height / height), request.target_height
    return round(width * request.scale), round(height * request.scale)


class Upscalers:
    """Which upscalers exist (packaged, in the upscalers folder, downloadable) and their networks."""

    def __init__(self, cache: ModelCache, presets: Presets, folder: Path | None) -> None:
        self.cache = cache
        self.presets = presets
        self.folder = folder

    def user_files(self) -> dict[str, Path]:
        if not self.folder or not self.folder.is_dir():
            return {}
        files = sorted(
            p
            for p in self.folder.iterdir()
            if p.suffix.lower() in UPSCALER_SUFFIXES and not p.name.startswith(".")  # "." : downloading
        )
        return {path.name: path for path in files}

    def downloadable(self) -> list[str]:
        """Official weights not on disk yet, fetched the first time they are chosen."""
        if not self.folder:
            return []
        return [name for name in self.presets.upscaler_downloads if name not in self.user_files()]

    def names(self) -> list[str]:
        return [*packaged_upscalers(), *self.user_files(), *self.downloadable(), LANCZOS]

    def check(self, name: str) -> None:
        if name not in self.names():
            raise self._unknown(name)

    def _unknown(self, name: str) -> InvalidRequest:
        return InvalidRequest(f"Unknown upscaler {name!r}. Choose one of: {', '.join(self.names())}.")

    def download(self, name: str, progress: Progress, *, offline: bool) -> None:
        """Fetch official weights into the upscalers folder (checked by loading them), or say how to."""
        download = self.presets.upscaler_downloads[name]
        assert self.folder is not None  # only then is anything downloadable
        if offline:
            raise ModelUnavailable(
                f"{name} is not downloaded yet and the studio is offline. Download it from {download.url} "
                f"and put it in {self.folder}, or pick a packaged Real-ESRGAN model."
            )
        download_upscaler(download.url, self.folder / name, progress=progress)

    def network(self, lease: Lease, name: str) -> Any:
        """The upscaler network `name`, from the cache, on the compute device."""
        user = self.user_files()
        if name not in packaged_upscalers() and name not in user:
            raise self._unknown(name)
        # Half precision only where the GPU runs it and the architecture supports it.
        half = UPSCALER.dtype_name(lease.device_config) == "float16"

        def load() -> Any:  # into RAM: the cache moves it to the device
            network = load_upscaler_file(user[name]) if name in user else load_packaged_upscaler(name)
            return network.half() if half and getattr(network, "supports_half", False) else network

        source = str(user[name]) if name in user else name
        return lease.model(UPSCALER, source, load, module=lambda network: getattr(network, "model", network))


class UpscalePipeline(ReadsPromptParameters, Task):
    task = "upscale"
    backends = ("torch", "openvino")  # the creative pass's
    request_type = UpscaleRequest

    def setup(self) -> None:
        self.upscalers = Upscalers(self.cache, self.presets, self.upscalers_dir)
        self.creative_pass = CreativeUpscaleTask(self.cache, self.presets, loras_dir=self.loras_dir)

    def check_inputs(self, request: UpscaleRequest) -> tuple[Image.Image, tuple[int, int]]:
        image = check_image(request.image)
        size = output_size(image.size, request)
        if max(size) > MAX_OUTPUT_SIDE:
            raise InvalidRequest(
                f"The result would be {size[0]}×{size[1]}; the limit is {MAX_OUTPUT_SIDE} pixels on the "
                "longer side. Pick a smaller scale or target size."
            )
        if min(size) < 1:
            raise InvalidRequest("The target size is too small.")
        self.upscalers.check(request.upscaler)
        if request.mode == "creative":
            check_prompt_side(request, self.presets, prompt_required=False)
        return image, size

    def generate(
        self,
        request: UpscaleRequest,
        progress: Progress = no_progress,
        is_cancelled: IsCancelled = never_cancelled,
        preview: PreviewSink = no_preview,
    ) -> Iterator[GeneratedImage]:
        # 1. Check inputs: the image, the size it will become, the upscaler (fetched if it is a download)
        image, size = self.check_inputs(request)
        if is_cancelled():
            raise RunCancelled()
        with self.cache.lease() as lease:  # the network stays pinned while it runs
            if request.upscaler in self.upscalers.downloadable():
                self.upscalers.download(request.upscaler, progress, offline=lease.offline)
            # 2. Super-resolution in tiles (or plain resampling), then exactly to the asked size
            if request.upscaler == LANCZOS:
                enlarged = image.resize(size, Image.Resampling.LANCZOS)
            else:
                enlarged = self._super_resolve(lease, image, size, request, progress, is_cancelled)
            extras: dict[str, Any] = {
                "upscaler": request.upscaler,
                "upscale": f"{image.width}x{image.height}->{size[0]}x{size[1]}",
            }
            if request.mode == "fast":
                # 3. The PNG keeps the source's parameters (prompt, seed, model) and adds the upscale's
                parameters = derived_parameters(self.task, image, size, extras, owned=UPSCALE_EXTRAS)
                yield GeneratedImage(enlarged, parameters)
                return

        # 3. The creative pass: low-strength image to image, tile by tile, on the diffusion scaffold
        creative = request.model_copy(update={"image": enlarged})
        [result] = self.creative_pass.generate(creative, progress, is_cancelled)
        extras = {**source_extras(image), **extras, **result.parameters.extras}
        yield GeneratedImage(result.image, replace(result.parameters, extras=extras), result.png_chunks)

    def _super_resolve(
        self,
        lease: Lease,
        image: Image.Image,
        size: tuple[int, int],
        request: UpscaleRequest,
        progress: Progress,
        is_cancelled: IsCancelled,
    ) -> Image.Image:
        def upscale(tile_size: int) -> np.ndarray:
            network = self.upscalers.network(lease, request.upscaler)
            scale = int(network.scale)
            # Enough passes of the network to reach the target; Lanczos takes it down to the exact size.
            passes = max(
                1, math.ceil(math.log(max(size[0] / image.width, size[1] / image.height), scale) - 1e-9)
            )
            device, dtype = lease.device_config.device, next(network.model.parameters()).dtype
            overlap = max(8, tile_size // 8)

            def process(tile: np.ndarray) -> np.ndarray:
                tensor = torch.from_numpy(np.ascontiguousarray(tile)).permute(2, 0, 1)[None].to(device, dtype)
                with torch.inference_mode():
                    output = network(tensor)
                return output[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()

            current = to_array(image)
            tiles_per_pass = []
            height, width = current.shape[:2]
            for _ in range(passes):
                tiles_per_pass.append(len(tile_grid(width, height, tile_size, overlap)))
                width, height = width * scale, height * scale
            done = 0
            for index in range(passes):
                current = run_tiled(
                    current,
                    process,
                    scale=scale,
                    tile=tile_size,
                    overlap=overlap,
                    progress=progress,
                    is_cancelled=is_cancelled,
                    progress_offset=done,
                    progress_total=sum(tiles_per_pass),
                )
                done += tiles_per_pass[index]
            return current

        # Out of memory: the same work in tiles half the size.
        halved = max(64, request.tile_size // 2)
        current = self.cache.run_on_gpu(lambda: upscale(request.tile_size), retry=lambda: upscale(halved))
        return resized(to_image(current), size)


class CreativeUpscaleTask(DiffusionTask[UpscaleRequest]):
    """The creative pass (what others call "Ultimate SD Upscale"): image to image at low strength on tiles
    of the model's native size, seams hidden by overlap and feathered blending; on the scaffold, so LoRAs,
    --tile, the decoders and the CPU backend come with it."""

    task = "upscale"
    request_type = UpscaleRequest
    encodes_image = True

    def check_inputs(self, request: UpscaleRequest) -> InputImage:
        return InputImage(request.image)  # already enlarged, checked at its own size by UpscalePipeline

    def strength(self, request: UpscaleRequest, inputs: InputImage) -> float:
        return request.creative_strength

    def extras(self, request: UpscaleRequest, inputs: InputImage) -> dict[str, Any]:
        return {"creative_strength": request.creative_strength}

    def prepare(
        self, lease: Lease, base: BaseModel, request: UpscaleRequest, inputs: InputImage, run: RunSettings
    ) -> Denoising:
        refuse_inpainting_model(base, run, "pick another model for the creative upscale.")
        side = base.resolution(run.source)
        tiles = tile_grid(inputs.image.width, inputs.image.height, side, overlap=side // 8)
        pipe = build_pipeline(base, run, self.presets, "img2img")
        arguments = {"strength": request.creative_strength}
        return Denoising(
            pipe, (side, side), arguments, calls_per_image=len(tiles), size_multiple=base.size_multiple
        )

    def denoise(
        self, denoise_once: Callable[..., Image.Image], inputs: InputImage, denoising: Denoising
    ) -> Image.Image:
        side = denoising.size[0]

        def tile_pass(pixels: np.ndarray) -> np.ndarray:
            tile = to_image(pixels)
            work = resized(tile, working_size(tile.size, denoising.size_multiple))
            return to_array(resized(denoise_once(image=work), tile.size))

        # Stop is checked at every step of every tile; progress comes from the steps
        tiled = run_tiled(to_array(inputs.image), tile_pass, scale=1, tile=side, overlap=side // 8,
                          progress=no_progress, is_cancelled=never_cancelled)  # fmt: skip
        return to_image(tiled)
