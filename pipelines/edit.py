"""Edit: an image changed by an instruction ("make it night", "remove the car"), by a model made for
instruction editing (FLUX.1 Kontext, FLUX.2 klein, Qwen-Image-Edit), which keeps what the instruction does
not touch.

Unlike image to image there is no strength: the whole schedule runs, conditioned on the image itself. The
family table names each family's editing pipeline (`"edit"`); a family without one, or a model of the
family that was not made for editing, is refused plainly.
"""

from __future__ import annotations

from PIL import Image
from pydantic import ConfigDict

from pipelines.diffusion import Denoising, DiffusionTask, GenerationRequest, RunSettings, build_pipeline
from pipelines.parts.images import InputImage, check_image, resized, working_size
from studio.core.cache import BaseModel, Lease
from studio.core.errors import InvalidRequest


class EditRequest(GenerationRequest):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None


def check_editor(base: BaseModel, run: RunSettings, editors: list[str]) -> None:
    """Refuse a model its family could edit with but that was not made for it (FLUX.1 schnell/dev)."""
    wanted = base.rules.pipeline_class("edit")  # refuses a family with no editing pipeline
    if base.pipeline_class_name != wanted:
        choose = f": choose {', '.join(editors)}" if editors else ""
        raise InvalidRequest(
            f"{run.source.name} is not an instruction-editing model (a {wanted} checkpoint){choose}."
        )


class EditPipeline(DiffusionTask[EditRequest]):
    task = "edit"
    request_type = EditRequest
    prompt_required = True  # the instruction
    encodes_image = True

    def check_inputs(self, request: EditRequest) -> InputImage:
        return InputImage(check_image(request.image))

    def prepare(
        self, lease: Lease, base: BaseModel, request: EditRequest, inputs: InputImage, run: RunSettings
    ) -> Denoising:
        check_editor(base, run, self.presets.editors())
        enlarged = max(1.0, base.rules.edit_min_side / min(inputs.image.size))
        wanted = (round(inputs.image.width * enlarged), round(inputs.image.height * enlarged))
        working = resized(inputs.image, working_size(wanted, base.size_multiple))
        pipe = build_pipeline(base, run, self.presets, "edit")
        return Denoising(pipe, working.size, edit_arguments(base, working, working.size))

    def finish(self, image: Image.Image, inputs: InputImage) -> Image.Image:
        return resized(image, inputs.image.size)


def edit_arguments(base: BaseModel, image: Image.Image, size: tuple[int, int]) -> dict:
    """An editing pipeline's call arguments for `image`, making an image of `size`: Kontext is told the size
    (it would otherwise move the image to a size it was trained at, and the result to a megapixel)."""
    arguments: dict = {"image": image, "width": size[0], "height": size[1]}
    if base.rules.edit_resizes:
        arguments |= {"max_area": size[0] * size[1], "_auto_resize": False}
    return arguments
