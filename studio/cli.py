"""The command line: the studio's pipelines without a browser.

    studio generate "a lighthouse at dusk" --style Cinematic --n 4 --seed 7 --out shots/
    studio upscale photo.png --upscaler "Real-ESRGAN x4plus" --scale 4 --out big/
    studio style photo.png --style "Night Swirl" --style "Amber Oil:0.5" --out styled/

Each result is a PNG with its parameters, written to `--out` without replacing any file; a progress bar
runs on stderr. Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from studio.devices import resolve_device
from studio.errors import StudioError
from studio.history import History
from studio.memory import OFFLOAD_CHOICES, default_budget
from studio.model_cache import ModelCache
from studio.presets import load_presets
from studio.settings import DEFAULT_PRESETS_DIR


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs", help="folder for the PNGs (default ./outputs)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="auto", help="auto, float16, bfloat16 or float32")
    parser.add_argument("--presets", default=str(DEFAULT_PRESETS_DIR), help="preset folder")
    parser.add_argument("--offline", action="store_true", help="never contact the model hub")
    parser.add_argument("--gpu-budget", type=float, metavar="GIB", help="GPU memory the models may fill")
    parser.add_argument(
        "--offload", choices=OFFLOAD_CHOICES, default="auto", help="as the studio's --offload"
    )


def _prompt_options(parser: argparse.ArgumentParser, *, count: bool = True) -> None:
    parser.add_argument("--negative", default="", help="negative prompt")
    parser.add_argument("--style", dest="styles", action="append", default=[], help="style preset (repeat)")
    parser.add_argument("--model", help="preset name, hub id, local folder or .safetensors file")
    if count:
        parser.add_argument("--n", type=int, default=1, help="number of images, 1-4")
    parser.add_argument("--seed", type=int, default=-1, help="-1 for random")
    parser.add_argument("--steps", type=int, help="default: the model preset's")
    parser.add_argument("--guidance", type=float, help="default: the model preset's")
    parser.add_argument("--sampler", help="default: the model preset's")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Image studio on the command line.")
    tasks = parser.add_subparsers(dest="task", required=True)

    generate = tasks.add_parser("generate", help="text to image")
    generate.add_argument("prompt")
    generate.add_argument("--aspect-ratio", default="1:1", help="an aspect-ratio preset, e.g. 16:9")
    _prompt_options(generate)
    _common(generate)

    upscale = tasks.add_parser("upscale", help="super-resolution, optionally with a creative pass")
    upscale.add_argument("image")
    upscale.add_argument("--upscaler", default="Real-ESRGAN x4plus")
    upscale.add_argument("--scale", type=float, default=4)
    upscale.add_argument("--width", type=int, default=0, help="exact width (0: from the scale)")
    upscale.add_argument("--height", type=int, default=0, help="exact height (0: from the scale)")
    upscale.add_argument("--tile", type=int, default=256, help="tile size in input pixels")
    upscale.add_argument("--creative", type=float, metavar="STRENGTH", help="add a creative pass")
    upscale.add_argument("--prompt", default="", help="guides the creative pass")
    upscale.add_argument("--upscalers", default="models/upscalers", help="folder of extra upscaler weights")
    _prompt_options(upscale, count=False)
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
    style.add_argument("--strength", type=float, default=1.0)
    style.add_argument("--working-size", type=int, default=1024)
    style.add_argument("--keep-colors", action="store_true")
    style.add_argument(
        "--diffusion", action="store_true", help="ControlNet + IP-Adapter on a diffusion model"
    )
    style.add_argument("--structure", default="canny", help="canny, softedge, lineart, depth or none")
    style.add_argument("--prompt", default="")
    style.add_argument("--preset-style", dest="styles", action="append", default=[], help="style preset")
    style.add_argument("--model")
    style.add_argument("--n", type=int, default=1)
    style.add_argument("--seed", type=int, default=-1)
    style.add_argument("--steps", type=int)
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


def _prompt_values(args: argparse.Namespace, prompt: str) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "negative_prompt": getattr(args, "negative", ""),
        "styles": tuple(args.styles),
        "model": args.model,
        "seed": args.seed,
        "steps": args.steps,
        "guidance_scale": getattr(args, "guidance", None),
        "sampler": getattr(args, "sampler", None),
    }


def _neural_styles(values: list[str]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    names, weights = [], []
    for value in values:
        name, _, weight = value.rpartition(":") if ":" in value else (value, "", "1")
        try:
            weights.append(float(weight))
        except ValueError:
            raise StudioError(f"--style {value!r}: the weight after ':' must be a number.") from None
        names.append(name)
    return tuple(names), tuple(weights) or (1.0,)


def _job(args: argparse.Namespace, cache: ModelCache) -> tuple[Any, type, dict[str, Any]]:
    """The pipeline, request type and request values for the task on the command line."""
    presets = load_presets(Path(args.presets))
    if args.task == "generate":
        from pipelines.text_to_image import TextToImagePipeline, TextToImageRequest

        values = {
            **_prompt_values(args, args.prompt),
            "num_images": args.n,
            "aspect_ratio": args.aspect_ratio,
        }
        return TextToImagePipeline(cache, presets), TextToImageRequest, values
    if args.task == "upscale":
        from pipelines.upscale import UpscalePipeline, UpscaleRequest

        values = {
            **_prompt_values(args, args.prompt),
            "image": _open(args.image),
            "upscaler": args.upscaler,
            "scale": args.scale,
            "target_width": args.width,
            "target_height": args.height,
            "tile_size": args.tile,
            "mode": "creative" if args.creative else "fast",
        }
        if args.creative:
            values["creative_strength"] = args.creative
        return UpscalePipeline(cache, presets, Path(args.upscalers)), UpscaleRequest, values
    style_image = _open(args.style_image, "style image") if args.style_image else None
    if args.diffusion:
        from pipelines.diffusion_style import DiffusionStylePipeline, DiffusionStyleRequest

        values = {
            **_prompt_values(args, args.prompt),
            "image": _open(args.image),
            "style_image": style_image,
            "structure": args.structure,
            "num_images": args.n,
        }
        return DiffusionStylePipeline(cache, presets), DiffusionStyleRequest, values
    from pipelines.instant_style import InstantStylePipeline, InstantStyleRequest

    names, weights = _neural_styles(args.neural_styles)
    values = {
        "image": _open(args.image),
        "styles": names,
        "style_weights": weights,
        "style_image": style_image,
        "strength": args.strength,
        "working_size": args.working_size,
        "preserve_colors": args.keep_colors,
    }
    return InstantStylePipeline(cache), InstantStyleRequest, values


def run(argv: list[str]) -> Iterator[Path]:
    """Run the command in `argv`, yielding each PNG as it is written."""
    from pipelines.common import parse_request

    args = build_parser().parse_args(argv)
    device_config = resolve_device(args.device, args.dtype)
    budget = default_budget(device_config.device, args.gpu_budget)
    cache = ModelCache(device_config, offline=args.offline, budget=budget, offload=args.offload)
    if args.task == "style" and args.list:
        from pipelines.instant_style import InstantStylePipeline

        for name in InstantStylePipeline(cache).style_names():
            print(name)
        return
    if args.task == "style" and not args.image:
        raise StudioError("Give the content image: studio style IMAGE --style NAME.")
    pipeline, request_type, values = _job(args, cache)
    request = parse_request(request_type, values)
    history = History(Path(args.out).expanduser(), dated=False)
    bar = ProgressBar(args.task)
    try:
        for result in pipeline.generate(request, progress=bar):
            yield history.save(result.image, result.parameters)
    finally:
        bar.close()


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
