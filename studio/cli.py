"""The command line: the studio's pipelines without a browser.

    studio generate "a lighthouse at dusk" --style Cinematic --n 4 --seed 7 --out shots/
    studio upscale photo.png --upscaler "Real-ESRGAN x4plus" --scale 4 --out big/
    studio style photo.png --style "Night Swirl" --style "Amber Oil:0.5" --out styled/

Each result is a PNG with its parameters, written to `--out` without replacing any file; a progress bar
runs on stderr. Bad input is one line on stderr and exit status 2. A flag left out takes the request
type's default, which its help shows: the defaults are declared once, in the request types.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from pipelines.diffusion import DiffusionRequest, GenerationRequest
from pipelines.diffusion_style import DiffusionStyleRequest
from pipelines.instant_style import InstantStylePipeline, InstantStyleRequest
from pipelines.parts.prompt_parameters import apply_prompt_parameters
from pipelines.registry import TASKS
from pipelines.text_to_image import TextToImageRequest
from pipelines.upscale import UpscaleRequest
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import StudioError
from studio.core.history import History
from studio.core.presets import Presets, load_presets
from studio.core.profiles import LOCAL_OWNER, Profiles
from studio.core.requests import Request, parse_request
from studio.core.settings import Settings, add_setting_arguments


def request_flag(
    parser: argparse.ArgumentParser,
    flag: str,
    request_type: type[Request],
    name: str,
    help: str,
    **options: Any,
) -> None:
    """A flag for the request field `name`; left out, it is absent and the request's default applies."""
    default = request_type.default(name)
    shown = "" if default in (None, "", ()) or isinstance(default, bool) else f" (default {default})"
    accepted = request_type.range_text(name)
    help = f"{help}, {accepted}" if accepted else help
    if "action" not in options and isinstance(default, int | float) and not isinstance(default, bool):
        options.setdefault("type", type(default))
    parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=help + shown, **options)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs", help="folder for the PNGs (default ./outputs)")
    shared = ("device", "dtype", "quantize", "presets_dir", "offline", "gpu_budget_gib", "offload", "backend")
    add_setting_arguments(parser, (*shared, "openvino_cache"))  # the studio's own, variables included


def _prompt_options(
    parser: argparse.ArgumentParser, request_type: type[DiffusionRequest], *, count: bool
) -> None:
    request_flag(parser, "--negative", request_type, "negative_prompt", "negative prompt")
    request_flag(parser, "--style", request_type, "styles", "style preset (repeat to stack)", action="append")
    request_flag(
        parser, "--model", request_type, "model", "preset name, hub id, folder, .safetensors or .gguf file"
    )
    if count:
        request_flag(parser, "--n", request_type, "num_images", "number of images")
    request_flag(parser, "--seed", request_type, "seed", "-1 for random")
    request_flag(parser, "--steps", request_type, "steps", "default: the model preset's", type=int)
    request_flag(
        parser, "--guidance", request_type, "guidance_scale", "default: the model preset's", type=float
    )
    request_flag(parser, "--sampler", request_type, "sampler", "default: the model preset's")
    request_flag(parser, "--stylize", request_type, "stylize", "how much the styles' words weigh")


def _generation_options(parser: argparse.ArgumentParser, request_type: type[GenerationRequest]) -> None:
    request_flag(
        parser, "--lora", request_type, "loras", "NAME[:WEIGHT] from --loras, a file or the hub (repeat)",
        action="append", metavar="NAME[:WEIGHT]",
    )  # fmt: skip
    request_flag(parser, "--chaos", request_type, "chaos", "how much the images vary")
    parser.add_argument(
        "--loras",
        dest="lora_folder",
        metavar="FOLDER",
        default=str(Settings.loras_dir),
        help="folder of LoRA .safetensors files",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Image studio on the command line.")
    tasks = parser.add_subparsers(dest="task", required=True)

    generate = tasks.add_parser("generate", help="text to image")
    generate.add_argument("prompt")
    request_flag(
        generate, "--aspect-ratio", TextToImageRequest, "aspect_ratio", "an aspect-ratio preset, e.g. 16:9"
    )
    request_flag(
        generate, "--tile", TextToImageRequest, "tile", "seamless: the image repeats", action="store_true"
    )
    _prompt_options(generate, TextToImageRequest, count=True)
    _generation_options(generate, TextToImageRequest)
    _common(generate)

    upscale = tasks.add_parser("upscale", help="super-resolution, optionally with a creative pass")
    upscale.add_argument("image")
    request_flag(upscale, "--upscaler", UpscaleRequest, "upscaler", "an upscaler name")
    request_flag(upscale, "--scale", UpscaleRequest, "scale", "how many times larger", type=float)
    request_flag(upscale, "--width", UpscaleRequest, "target_width", "exact width (0: from the scale)")
    request_flag(upscale, "--height", UpscaleRequest, "target_height", "exact height (0: from the scale)")
    request_flag(upscale, "--tile", UpscaleRequest, "tile_size", "tile size in input pixels")
    creative = UpscaleRequest.default("creative_strength")
    upscale.add_argument(
        "--creative",
        type=float,
        nargs="?",
        const=creative,
        metavar="STRENGTH",
        help=f"add a creative pass, at strength {creative} or the one given",
    )
    request_flag(upscale, "--prompt", UpscaleRequest, "prompt", "guides the creative pass")
    upscale.add_argument(
        "--upscalers", default=str(Settings.upscalers_dir), help="folder of extra upscaler weights"
    )
    _prompt_options(upscale, UpscaleRequest, count=False)
    _common(upscale)

    style = tasks.add_parser("style", help="instant neural style (or --diffusion)")
    style.add_argument("image", nargs="?", help="the content image (not needed with --list)")
    style.add_argument(
        "--style",
        dest="neural_styles",
        action="append",
        default=[],
        metavar="NAME[:WEIGHT]",
        help="a built-in style, up to three mixed by weight; `studio style --list` names them",
    )
    style.add_argument("--list", action="store_true", help="list the built-in styles and exit")
    style.add_argument("--style-image", help="a painting whose style to use")
    request_flag(
        style, "--strength", InstantStyleRequest, "strength", "0 keeps the photo, 1 is the full style"
    )
    request_flag(style, "--working-size", InstantStyleRequest, "working_size", "longer side the network sees")
    request_flag(
        style,
        "--keep-colors",
        InstantStyleRequest,
        "preserve_colors",
        "keep the photo's colours",
        action="store_true",
    )
    style.add_argument(
        "--diffusion", action="store_true", help="ControlNet + IP-Adapter on a diffusion model"
    )
    request_flag(
        style, "--structure", DiffusionStyleRequest, "structure", "canny, softedge, lineart, depth or none"
    )
    request_flag(style, "--prompt", DiffusionStyleRequest, "prompt", "describes the style (diffusion)")
    request_flag(
        style, "--preset-style", DiffusionStyleRequest, "styles", "style preset (diffusion)", action="append"
    )
    request_flag(style, "--model", DiffusionStyleRequest, "model", "model (diffusion)")
    request_flag(style, "--n", DiffusionStyleRequest, "num_images", "number of images (diffusion)")
    request_flag(style, "--seed", DiffusionStyleRequest, "seed", "-1 for random (diffusion)")
    request_flag(style, "--steps", DiffusionStyleRequest, "steps", "default: the model preset's", type=int)
    _generation_options(style, DiffusionStyleRequest)
    _common(style)
    return parser


class ProgressBar:
    """A one-line progress bar on stderr, fed with `progress(step, total)`."""

    def __init__(self, label: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(desc=label, total=1, unit="step", file=sys.stderr, leave=False)

    def __call__(self, step: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = step
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _open(path: str, what: str = "image") -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError) as error:
        raise StudioError(f"The {what} {path} could not be read ({error}).") from error


def _neural_styles(values: list[str]) -> dict[str, tuple]:
    names, weights = [], []
    for value in values:
        name, _, weight = value.rpartition(":") if ":" in value else (value, "", "1")
        try:
            weights.append(float(weight))
        except ValueError:
            raise StudioError(f"--style {value!r}: the weight after ':' must be a number.") from None
        names.append(name)
    return {"styles": tuple(names), "style_weights": tuple(weights)} if names else {}


def _job(args: argparse.Namespace, cache: ModelCache, presets: Presets) -> tuple[Any, dict[str, Any]]:
    """The pipeline for the task on the command line, and its request values."""
    given = vars(args)
    upscalers = Path(args.upscalers) if args.task == "upscale" else None
    loras = Path(getattr(args, "lora_folder", Settings.loras_dir))
    if args.task == "generate":
        task = "txt2img"
    elif args.task == "upscale":
        task = "upscale"
        given = {**given, "image": _open(args.image)}
        if args.creative:
            given.update(mode="creative", creative_strength=args.creative)
    elif args.diffusion:
        task = "style_diffusion"
        style_image = _open(args.style_image, "style image") if args.style_image else None
        given = {**given, "image": _open(args.image), "style_image": style_image}
    else:
        task = "style_instant"
        style_image = _open(args.style_image, "style image") if args.style_image else None
        given = {
            **given,
            "image": _open(args.image),
            "style_image": style_image,
            **_neural_styles(args.neural_styles),
        }
    pipeline = TASKS[task](cache, presets, upscalers_dir=upscalers, loras_dir=loras)
    fields = pipeline.request_type.model_fields
    return pipeline, {name: value for name, value in given.items() if name in fields and value is not None}


def run(argv: list[str]) -> Iterator[Path]:
    """Run the command in `argv`, yielding each PNG as it is written."""
    args = build_parser().parse_args(argv)
    device_config = resolve_device(args.device, args.dtype, args.quantize)
    cache = ModelCache.for_machine(
        device_config,
        offline=args.offline,
        gpu_budget_gib=args.gpu_budget_gib,
        offload=args.offload,
        backend=args.backend,
        openvino_folder=args.openvino_cache,
    )
    presets = load_presets(args.presets_dir)
    if args.task == "style" and args.list:
        for name in InstantStylePipeline(cache, presets).style_names():
            print(name)
        return
    if args.task == "style" and not args.image:
        raise StudioError("Give the content image: studio style IMAGE --style NAME.")
    pipeline, values = _job(args, cache, presets)
    values, notes = apply_prompt_parameters(values, pipeline.request_type, presets)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    out = Path(args.out).expanduser()
    request = personalised(parse_request(pipeline.request_type, values), out)
    # Into the studio's own outputs folder, through its index; into any other, plain files only.
    history = History(out, dated=False, indexed=(out / ".history.sqlite").exists())
    bar = ProgressBar(args.task)
    try:
        for result in pipeline.generate(request, progress=bar):
            yield history.save(result.image, result.parameters, png_chunks=result.png_chunks)
    finally:
        bar.close()


def personalised(request: Request, out: Path) -> Request:
    """`--p CODE` on the command line: a profile of this machine's user, kept where a studio writing into
    the same outputs folder keeps them (`--out`, ./outputs as the studio's default)."""
    if not isinstance(request, GenerationRequest) or request.profile is None:
        return request
    profile = Profiles(Settings(outputs=out).profiles_folder).own(LOCAL_OWNER, request.profile)
    if profile is None:
        raise StudioError(
            f"There is no taste profile in {out}: rate pairs on the studio's Personalize tab first."
        )
    return request.model_copy(update={"taste": profile, "profile": profile.code})


def main(argv: list[str] | None = None) -> int:
    try:
        for path in run(sys.argv[1:] if argv is None else argv):
            print(path)
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
