"""Edit: an image changed by an instruction ("make it night", "remove the car"), by a model made for
instruction editing (FLUX.1 Kontext, FLUX.2 klein, Qwen-Image-Edit and its Plus), which keeps what the
instruction does not touch. Models that read several pictures take more images the instruction can name
("put the hat from picture 2 on the man").

Unlike image to image there is no strength: the whole schedule runs, conditioned on the image itself. The
family table names each family's editing checkpoints and how many pictures each reads (`editors`); a
family without one, a model of the family that was not made for editing, or too many pictures for it,
is refused plainly.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image
from pydantic import ConfigDict, Field

from pipelines.diffusion import Denoising, DiffusionTask, GenerationRequest, RunSettings, build_pipeline
from pipelines.parts.images import InputImage, check_image, resized, working_size
from studio.core.cache import BaseModel, Lease
from studio.core.errors import InvalidRequest

MAX_EDIT_PICTURES = 3  # the image and the pictures its instruction names, at most (Qwen-Image-Edit-Plus's)


class EditRequest(GenerationRequest):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    image: Image.Image | None = None
    more_pictures: tuple[Image.Image, ...] = Field((), max_length=MAX_EDIT_PICTURES - 1)  # pictures 2, 3


@dataclass(frozen=True)
class EditInputs(InputImage):
    more_pictures: tuple[Image.Image, ...] = ()  # pictures 2, 3


def check_editor(base: BaseModel, run: RunSettings, editors: list[str]) -> None:
    """Refuse a model its family could edit with but that was not made for it (FLUX.1 schnell/dev)."""
    if base.rules.editing_pipeline(base.pipeline_class_name) is None:  # refuses a family with none
        wanted = " or ".join(base.rules.editors)
        choose = f": choose {', '.join(editors)}" if editors else ""
        raise InvalidRequest(
            f"{run.source.name} is not an instruction-editing model (a {wanted} checkpoint){choose}."
        )


class EditPipeline(DiffusionTask[EditRequest]):
    task = "edit"
    request_type = EditRequest
    prompt_required = True  # the instruction
    encodes_image = True

    def check_inputs(self, request: EditRequest) -> EditInputs:
        more = tuple(check_image(image, f"picture {n}") for n, image in enumerate(request.more_pictures, 2))
        return EditInputs(check_image(request.image), more)

    def extras(self, request: EditRequest, inputs: EditInputs) -> dict:
        return {"edit_pictures": 1 + len(inputs.more_pictures)} if inputs.more_pictures else {}

    def prepare(
        self, lease: Lease, base: BaseModel, request: EditRequest, inputs: EditInputs, run: RunSettings
    ) -> Denoising:
        check_editor(base, run, self.presets.editors())
        check_pictures(base, run, 1 + len(inputs.more_pictures))
        working = resized(inputs.image, working_size(readable(inputs.image, base), base.size_multiple))
        more = tuple(resized(image, readable(image, base)) for image in inputs.more_pictures)
        pipe = build_pipeline(base, run, self.presets, "edit")
        return Denoising(pipe, working.size, edit_arguments(base, working, working.size, more))

    def finish(self, image: Image.Image, inputs: EditInputs) -> Image.Image:
        return resized(image, inputs.image.size)


def readable(image: Image.Image, base: BaseModel) -> tuple[int, int]:
    """The size a picture is edited at: its own, enlarged to the least side the editing pipeline takes."""
    enlarged = max(1.0, base.rules.edit_min_side / min(image.size))
    return round(image.width * enlarged), round(image.height * enlarged)


def check_pictures(base: BaseModel, run: RunSettings, count: int) -> None:
    """Refuse more pictures than the editing model reads at once."""
    most = base.rules.editors[base.pipeline_class_name]
    if count <= most:
        return
    if most == 1:
        raise InvalidRequest(f"{run.source.name} reads one picture, the image to edit: leave out the others.")
    raise InvalidRequest(f"{run.source.name} reads at most {most} pictures: leave out the others.")


def edit_arguments(
    base: BaseModel, image: Image.Image, size: tuple[int, int], more: tuple[Image.Image, ...] = ()
) -> dict:
    """An editing pipeline's call arguments for `image` (and the `more` pictures its prompt names, as
    pictures 2, 3), making an image of `size`: Kontext is told the size (it would otherwise move the image
    to a size it was trained at, and the result to a megapixel)."""
    pictures = [image, *more] if more else image
    arguments: dict = {"image": pictures, "width": size[0], "height": size[1]}
    if base.rules.edit_resizes:
        arguments |= {"max_area": size[0] * size[1], "_auto_resize": False}
    return arguments
