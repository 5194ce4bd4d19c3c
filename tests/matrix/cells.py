"""The cells of the feature matrix: every diffusion task × feature, as request values, for a model family.

tests/matrix/test_feature_matrix.py runs them on the tiny models on both backends; bench/gpu_matrix.py runs
them on CUDA with the real architectures' shapes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import skimage.data
from PIL import Image

from pipelines.blend import BlendPipeline
from pipelines.diffusion_style import DiffusionStylePipeline
from pipelines.edit import EditPipeline
from pipelines.image_to_image import ImageToImagePipeline
from pipelines.inpaint import InpaintPipeline
from pipelines.live import LivePipeline
from pipelines.outpaint import OutpaintPipeline
from pipelines.text_to_image import TextToImagePipeline
from pipelines.upscale import LANCZOS, UpscalePipeline
from studio.core.families import FAMILIES as FAMILIES_BY_NAME

TASKS = {
    "txt2img": TextToImagePipeline,
    "live": LivePipeline,
    "blend": BlendPipeline,
    "vary": ImageToImagePipeline,
    "inpaint": InpaintPipeline,
    "outpaint": OutpaintPipeline,
    "style_transfer": DiffusionStylePipeline,
    "creative_upscale": UpscalePipeline,
    "edit": EditPipeline,
}
FEATURES = [
    "plain",
    "long_prompt",
    "weights",
    "two_styles",
    "chaos",
    "tile",
    "lora",
    "style_image",
    "odd_aspect",
]
FAMILIES = ["sd", "sdxl", "flux", "flux2", "sd3", "zimage", "qwen", "sana"]
# Families OpenVINO does not run: their cells record `Backend: torch`
TORCH_FAMILIES = {"flux", "flux2", "sd3", "zimage", "qwen", "sana"}
LONG_PROMPT = ", ".join(["a lighthouse on a granite cliff at dusk", "waves breaking in white foam"] * 6)
TORCH_ONLY = {"blend", "style_transfer"}  # image prompts (IP-Adapters); ControlNet residuals
IMAGE_TASKS = {"vary", "inpaint", "outpaint", "style_transfer", "creative_upscale", "edit"}


def stays_on_torch(task: str, feature: str, family: str) -> bool:
    """What OpenVINO cannot run whole: it records `Backend: torch`."""
    return task in TORCH_ONLY or feature == "style_image" or family in TORCH_FAMILIES


def picture(size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).resize(size, Image.Resampling.LANCZOS)


def preset_name(family: str) -> str:
    return f"matrix-{family}"


def write_matrix_presets(
    folder: Path,
    base_presets: Path,
    models: dict[str, Path],
    resolutions: dict[str, int],
    inpaint: Path | None = None,
) -> Path:
    """`base_presets` copied to `folder` with a model preset per family ("matrix-sd", "matrix-sdxl"),
    taking 2 steps; the SD one with its inpainting checkpoint, where one is given."""
    shutil.copytree(base_presets, folder, dirs_exist_ok=True)
    presets = json.loads((folder / "models.json").read_text())
    for family, source in models.items():
        preset = {"name": preset_name(family), "label": family, "source": str(source), "family": family,
                  "resolution": resolutions[family], "steps": 2, "guidance_scale": 5,
                  "sampler": FAMILIES_BY_NAME[family].own_sampler or "Euler"}  # fmt: skip
        if family == "sd" and inpaint is not None:
            preset["inpaint_source"] = str(inpaint)
        presets["models"].append(preset)
    (folder / "models.json").write_text(json.dumps(presets))
    return folder


def values_for(task: str, feature: str, family: str, side: int, loras: dict[str, str]) -> dict:
    """The request of one cell: the task's own inputs (images of about `side` pixels), then the feature."""
    values: dict = {
        "model": preset_name(family),
        "prompt": "a lighthouse by the sea",
        "seed": 7,
        "num_images": 1,
    }
    size = (side * 7 // 4, side * 3 // 4) if feature == "odd_aspect" else (side, side)
    if task in IMAGE_TASKS:
        values["image"] = picture(size)
    if task == "vary":
        values["strength"] = 0.6
    if task == "inpaint":
        mask = Image.new("L", size, 0)
        mask.paste(255, (size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4))
        values["mask"] = mask
    if task == "outpaint":
        values["direction"] = "pan_right"
    if task == "blend":
        values.update(images=(picture((side, side)), picture((side * 3 // 4, side)).rotate(90)))
    if task == "creative_upscale":
        values.update(mode="creative", upscaler=LANCZOS, scale=1.5, creative_strength=0.5)
    if task == "style_transfer":
        values["style_image"] = picture((side, side)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if feature == "long_prompt":
        values["prompt"] = LONG_PROMPT
    elif feature == "weights":
        values["prompt"] = "(lighthouse:1.4) castle::2 fog::1"
    elif feature == "two_styles":
        values["styles"] = ("Cinematic", "Analog Film")
    elif feature == "chaos":
        values.update(prompt="a lighthouse, a castle, fog, gulls", chaos=50)
    elif feature == "tile":
        values["tile"] = True
    elif feature == "lora":
        values["loras"] = (loras[family],)
    elif feature == "style_image":
        values["style_images"] = (picture((side, side)),)
    elif feature == "odd_aspect" and task in {"txt2img", "live", "blend"}:
        values["aspect_ratio"] = "21:9"
    return values
