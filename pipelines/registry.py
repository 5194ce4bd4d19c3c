"""The studio's tasks, by the name the page, the API, the command line and ZeroGPU run them as."""

from __future__ import annotations

from pipelines.blend import BlendPipeline
from pipelines.describe import DescribePipeline
from pipelines.diffusion_style import DiffusionStylePipeline
from pipelines.edit import EditPipeline
from pipelines.image_to_image import ImageToImagePipeline
from pipelines.inpaint import InpaintPipeline
from pipelines.instant_style import InstantStylePipeline
from pipelines.live import LivePipeline
from pipelines.outpaint import OutpaintPipeline
from pipelines.style_code import StyleCodePipeline
from pipelines.task import Task
from pipelines.text_to_image import TextToImagePipeline
from pipelines.upscale import UpscalePipeline

TASKS: dict[str, type[Task]] = {
    "txt2img": TextToImagePipeline,
    "live": LivePipeline,
    "blend": BlendPipeline,
    "img2img": ImageToImagePipeline,
    "edit": EditPipeline,
    "inpaint": InpaintPipeline,
    "outpaint": OutpaintPipeline,
    "style_instant": InstantStylePipeline,
    "style_diffusion": DiffusionStylePipeline,
    "upscale": UpscalePipeline,
    "describe": DescribePipeline,
    "style_code": StyleCodePipeline,
}
