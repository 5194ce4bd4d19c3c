"""The model families the studio runs, as data: which diffusers pipeline class does each kind of task, and
what a family cannot do (said plainly, naming the family, where a request asks for it).

SD 1.x/2.x and SDXL denoise with a UNet and condition on CLIP through compel (weights, long prompts in
chunks). FLUX.1 denoises with a transformer on packed latents, samples by flow matching, takes its guidance
as an embedding (distilled: no negative prompt) and reads the prompt with T5 (512 tokens) beside CLIP.
SD 3.5 denoises with a transformer too, samples by flow matching, and guides with classifier-free guidance
(a negative prompt), reading the prompt with two CLIPs and T5 (256 tokens). Z-Image denoises with a
single-stream transformer by flow matching and reads the prompt with a Qwen3 language model (512 tokens);
Z-Image-Turbo takes no guidance, Z-Image itself guides with a negative prompt. Qwen-Image denoises with a
dual-stream transformer by flow matching, reads the prompt with Qwen2.5-VL's language model and guides
with a negative prompt (its pipelines call that `true_cfg_scale`); Qwen-Image-Edit edits, its language model
seeing the image too. FLUX.2 [klein] reads the prompt with Qwen3 (three of its layers side by side), is
step-distilled (4 steps, no negative prompt), and edits with the same pipeline that draws, the image being
its reference; it has no image-to-image pipeline. SANA-Sprint
denoises with a linear-attention transformer on a 32× autoencoder's latents in one to four steps of its own
consistency sampler (SCM), reads the prompt with Gemma 2 (300 tokens) and takes its guidance as an input.
A family joins by a row here, its pipeline classes being diffusers' own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from studio.core.errors import InvalidRequest

FamilyName = Literal["sd", "sdxl", "flux", "flux2", "sd3", "zimage", "qwen", "sana"]
# What a request may ask that only some families do, and how a refusal names it (a task a family has no
# pipeline for, ControlNet's among them, is refused by `pipeline_class`).
Feature = Literal["tile", "image_prompts", "openvino", "weights", "negative_prompt"]
TASK_WORDS = {  # the kinds of pipeline, as a refusal names them
    "txt2img": "Text to image",
    "img2img": "Image to image",
    "inpaint": "Inpainting",
    "controlnet_img2img": "Style transfer by structure (ControlNet)",
    "edit": "Instruction editing",
    "fill": "Inpainting by a Fill checkpoint",
}
FEATURE_WORDS: dict[str, str] = {
    "tile": "make seamless tiles (--tile)",
    "image_prompts": "take image prompts (style images and references, Blend) here yet",
    "openvino": "run on OpenVINO",
    "weights": "weigh words: prompt weights are read as plain words",
    "negative_prompt": "use a negative prompt: its guidance is distilled",
}


@dataclass(frozen=True)
class Family:
    name: FamilyName
    label: str  # as people call it, in messages
    class_prefixes: tuple[str, ...]  # the diffusers pipeline classes a saved model of the family names
    pipelines: dict[str, str]  # diffusers pipeline class by kind of task ("txt2img", "img2img", ...)
    denoiser: Literal["unet", "transformer"]
    conditioning: Literal["compel", "text"]  # compel's weighted embeddings, or the text to the pipeline
    cannot: frozenset[str] = field(default_factory=frozenset)  # features (see FEATURE_WORDS) it lacks
    # The checkpoints made for instruction editing, by the pipeline class they are saved as (each edits
    # with its own), and how many pictures each edits from at once: the image and the ones the prompt names
    editors: dict[str, int] = field(default_factory=dict)
    # "cfg": classifier-free guidance above 1, with a negative prompt; "distilled": the guidance scale is an
    # input of the denoiser (FLUX.1-dev; schnell ignores it), and there is no negative prompt
    guidance: Literal["cfg", "distilled"] = "cfg"
    guidance_argument: str = "guidance_scale"  # what its pipelines call the guidance scale
    # Which scheduler kind its samplers must be; "own": its checkpoints' one sampler, `own_sampler` (a
    # sampler preset's name), whatever is asked (SANA-Sprint's SCM)
    samplers: Literal["noise", "flow", "own"] = "noise"
    own_sampler: str | None = None
    # Steps and guidance for a model of the family with no preset; None: the presets' `other_models`
    default_steps: int | None = None
    default_guidance: float | None = None
    text_tokens: int = 77  # what its main text encoder reads of a prompt at once
    # Its image-to-image call works at its default size, not the image's, unless told the size
    image_calls_need_size: bool = False
    native_side: int = 1024  # a transformer's square side where its autoencoder's config does not say one
    # Its pipelines hand each step the latents as 2×2 patches in a row (FLUX.1, Qwen-Image), not C×h×w
    latents_packed: bool = False
    # Its editing pipeline moves the image to the nearest size it was trained at unless told its own
    # (FLUX.1 Kontext's `max_area` and `_auto_resize`)
    edit_resizes: bool = False
    # The least side its editing pipeline takes an image at (FLUX.2's reference images: 64 px); a smaller
    # image is edited enlarged, and the result brought back to its size
    edit_min_side: int = 8
    # Its sampler takes an intermediate timestep at two steps only (SANA-Sprint's SCM: its pipelines' default
    # is for two steps, and must be taken away for any other count)
    midpoint_at_two_steps: bool = False

    def can(self, feature: Feature) -> bool:
        return feature not in self.cannot

    def refusal(self, feature: Feature) -> str:
        return f"{self.label} models cannot {FEATURE_WORDS[feature]}."

    def check(self, feature: Feature) -> None:
        if not self.can(feature):
            raise InvalidRequest(self.refusal(feature))

    def sampler_note(self, asked: str) -> str:
        """Why the sampler `asked` was not used."""
        if self.samplers == "own":
            return f"{self.label} models sample with {self.own_sampler} only."
        return f"{self.label} models sample by flow matching, which {asked} has no form of."

    def editing_pipeline(self, class_name: str) -> str | None:
        """The pipeline a checkpoint saved as `class_name` edits with (its own), or None for one not made
        for editing; a plain refusal for a family with no editing pipeline."""
        if not self.editors:
            raise self.unavailable("edit")
        return class_name if class_name in self.editors else None

    def pipeline_class(self, kind: str) -> str:
        """The diffusers pipeline class name for `kind`, or a plain refusal naming the task and family."""
        if kind not in self.pipelines:
            raise self.unavailable(kind)
        return self.pipelines[kind]

    def unavailable(self, kind: str) -> InvalidRequest:
        return InvalidRequest(f"{TASK_WORDS[kind]} is not available for {self.label} models yet.")


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            name="sd",
            label="Stable Diffusion 1.x/2.x",
            class_prefixes=("StableDiffusion", "LatentConsistency"),
            pipelines={
                "txt2img": "StableDiffusionPipeline",
                "img2img": "StableDiffusionImg2ImgPipeline",
                "inpaint": "StableDiffusionInpaintPipeline",
                "controlnet_img2img": "StableDiffusionControlNetImg2ImgPipeline",
            },
            denoiser="unet",
            conditioning="compel",
        ),
        Family(
            name="sdxl",
            label="SDXL",
            class_prefixes=("StableDiffusionXL",),
            pipelines={
                "txt2img": "StableDiffusionXLPipeline",
                "img2img": "StableDiffusionXLImg2ImgPipeline",
                "inpaint": "StableDiffusionXLInpaintPipeline",
                "controlnet_img2img": "StableDiffusionXLControlNetImg2ImgPipeline",
            },
            denoiser="unet",
            conditioning="compel",
        ),
        Family(
            name="flux",
            label="FLUX.1",
            class_prefixes=("Flux",),
            pipelines={
                "txt2img": "FluxPipeline",
                "img2img": "FluxImg2ImgPipeline",
                "inpaint": "FluxInpaintPipeline",
                # A Fill checkpoint's transformer takes the masked image and the mask beside the latents
                "fill": "FluxFillPipeline",
            },
            editors={"FluxKontextPipeline": 1},  # a Kontext checkpoint only
            denoiser="transformer",
            conditioning="text",
            cannot=frozenset({"tile", "image_prompts", "openvino", "weights", "negative_prompt"}),
            guidance="distilled",
            samplers="flow",
            default_steps=28,
            default_guidance=3.5,
            text_tokens=512,
            image_calls_need_size=True,
            latents_packed=True,
            edit_resizes=True,
        ),
        Family(
            name="flux2",
            label="FLUX.2 [klein]",
            class_prefixes=("Flux2Klein",),
            pipelines={
                "txt2img": "Flux2KleinPipeline",
                "inpaint": "Flux2KleinInpaintPipeline",
            },
            editors={"Flux2KleinPipeline": 3},  # every klein checkpoint: the images as its references
            denoiser="transformer",
            conditioning="text",
            cannot=frozenset({"tile", "image_prompts", "openvino", "weights", "negative_prompt"}),
            # The 4-step klein checkpoints ignore the scale; klein base guides against an empty prompt
            guidance="distilled",
            samplers="flow",
            default_steps=4,
            default_guidance=1.0,
            text_tokens=512,
            image_calls_need_size=True,
            edit_min_side=64,
        ),
        Family(
            name="sana",
            label="SANA-Sprint",
            class_prefixes=("SanaSprint",),
            pipelines={"txt2img": "SanaSprintPipeline", "img2img": "SanaSprintImg2ImgPipeline"},
            denoiser="transformer",
            conditioning="text",
            cannot=frozenset({"tile", "image_prompts", "openvino", "weights", "negative_prompt"}),
            guidance="distilled",  # an input of its transformer; no negative prompt
            samplers="own",
            own_sampler="SCM",
            midpoint_at_two_steps=True,
            default_steps=2,
            default_guidance=4.5,
            text_tokens=300,
            image_calls_need_size=True,
        ),
        Family(
            name="sd3",
            label="SD 3.5",
            class_prefixes=("StableDiffusion3",),
            pipelines={
                "txt2img": "StableDiffusion3Pipeline",
                "img2img": "StableDiffusion3Img2ImgPipeline",
                "inpaint": "StableDiffusion3InpaintPipeline",
            },
            denoiser="transformer",
            conditioning="text",
            cannot=frozenset({"tile", "image_prompts", "openvino", "weights"}),
            samplers="flow",
            default_steps=28,
            default_guidance=4.5,
            text_tokens=256,
            image_calls_need_size=True,
        ),
        Family(
            name="zimage",
            label="Z-Image",
            class_prefixes=("ZImage",),
            pipelines={
                "txt2img": "ZImagePipeline",
                "img2img": "ZImageImg2ImgPipeline",
                "inpaint": "ZImageInpaintPipeline",
            },
            denoiser="transformer",
            conditioning="text",
            cannot=frozenset({"tile", "image_prompts", "openvino", "weights"}),
            samplers="flow",
            default_steps=9,  # Z-Image-Turbo's, the one people run; no guidance
            default_guidance=0.0,
            text_tokens=512,
            image_calls_need_size=True,
        ),
        Family(
            name="qwen",
            label="Qwen-Image",
            class_prefixes=("QwenImage",),
            pipelines={
                "txt2img": "QwenImagePipeline",
                "img2img": "QwenImageImg2ImgPipeline",
                "inpaint": "QwenImageInpaintPipeline",
            },
            # Qwen-Image-Edit checkpoints; the Plus ones (2509 on) read up to three pictures
            editors={"QwenImageEditPipeline": 1, "QwenImageEditPlusPipeline": 3},
            denoiser="transformer",
            conditioning="text",
            cannot=frozenset({"tile", "image_prompts", "openvino", "weights"}),
            guidance_argument="true_cfg_scale",  # its `guidance_scale` is for guidance-distilled checkpoints
            samplers="flow",
            default_steps=50,
            default_guidance=4.0,
            text_tokens=512,
            image_calls_need_size=True,
            latents_packed=True,
            native_side=1328,
        ),
    )
}


# Checkpoints a family's pipelines cannot run (their denoiser takes another input layout), refused by name
# before any weight loads rather than failing inside a pipeline
NOT_YET = {
    "FluxControlPipeline": "FLUX.1 Canny and Depth (their transformer takes a control image too)",
}


def family_of(class_name: str) -> Family:
    """The family of a saved diffusers pipeline class (its model_index.json's `_class_name`); the longest
    matching prefix wins (StableDiffusionXL… is SDXL, not SD). A prefix followed by a digit is another
    generation's name, not this family's (Flux2Pipeline is FLUX.2, not FLUX.1)."""
    if class_name in NOT_YET:
        raise InvalidRequest(f"{NOT_YET[class_name]} checkpoints are not supported yet.")
    matches = [
        (len(prefix), family)
        for family in FAMILIES.values()
        for prefix in family.class_prefixes
        if class_name.startswith(prefix) and not class_name[len(prefix) : len(prefix) + 1].isdigit()
    ]
    if not matches:
        labels = ", ".join(family.label for family in FAMILIES.values())
        raise InvalidRequest(
            f"{class_name or 'This model'} is not a pipeline of a family this studio runs ({labels})."
        )
    return max(matches, key=lambda match: match[0])[1]


def own_sampler_owner(sampler: str) -> Family | None:
    """The family whose checkpoints alone sample with `sampler` (SCM: SANA-Sprint's), if any."""
    return next((family for family in FAMILIES.values() if family.own_sampler == sampler), None)
