"""Settings of one studio process, from command-line flags with environment variables as defaults.

Every flag has an environment variable (`STUDIO_<FLAG>`), so a Space or a container can be configured
without a command line. Flags win over the environment.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from studio.core.errors import InvalidRequest
from studio.core.memory import OFFLOAD_CHOICES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PRESETS_DIR = PROJECT_ROOT / "presets"


@dataclass(frozen=True)
class Settings:
    model: str | None = None  # preset name, hub id, local folder or .safetensors; None: the default preset
    device: str = "auto"
    dtype: str = "auto"
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: tuple[tuple[str, str], ...] = ()
    outputs: Path = Path("outputs")
    presets_dir: Path = DEFAULT_PRESETS_DIR
    models_dir: Path = Path("models")  # model files visitors may name by path (with the two below)
    upscalers_dir: Path = Path("models/upscalers")
    loras_dir: Path = Path("models/loras")
    styles_dir: Path | None = None  # style codes and moodboards; None: `styles` in the outputs folder
    allow_any_model_path: bool = False  # requests may name any server path even when others can reach it
    backend: str = "auto"  # "torch", or "openvino" (auto: where the models compute on a CPU)
    openvino_dir: Path = Path("models/openvino")  # OpenVINO's converted models, one folder each
    offline: bool = False
    root_path: str = ""  # the URL prefix when served behind a reverse proxy, e.g. /studio
    queue_size: int = 64  # requests waiting at most; more are refused with a message
    max_image_side: int = 2048  # longer side of an input image a request may bring, in pixels
    max_images: int = 4  # images per request
    gpu_budget_gib: float | None = None  # None: free GPU memory at start minus a reserve
    ram_budget_gib: float | None = None  # None: three quarters of the RAM
    offload: str = "auto"  # how a run whose models do not fit the GPU budget runs; see studio/core/memory.py
    public_history: bool = False  # visitors reaching the studio from elsewhere see every result, not theirs
    max_runs_per_minute: int = 0  # per visitor; 0: no limit
    mcp: bool = False  # also serve every named endpoint as an MCP tool, at /gradio_api/mcp/

    @property
    def reachable_by_others(self) -> bool:
        """Whether anyone but the local user can reach this studio: a share link, logins, or an address
        other than this machine's own."""
        return self.share or bool(self.auth) or self.host not in {"127.0.0.1", "localhost", "::1"}

    @property
    def any_model_path(self) -> bool:
        """Whether requests may name model files anywhere on this machine, not only in its model folders."""
        return self.allow_any_model_path or not self.reachable_by_others

    @property
    def styles_folder(self) -> Path:
        """Where style codes are saved: `styles_dir`, or beside the results they were made for."""
        return self.styles_dir if self.styles_dir is not None else self.outputs / "styles"

    @property
    def model_folders(self) -> tuple[Path, ...]:
        return (self.models_dir, self.loras_dir, self.upscalers_dir)


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"STUDIO_{name.upper()}", default)


def _env_flag(name: str) -> bool:
    return (_env(name) or "").strip().lower() in {"1", "true", "yes", "on"}


def parse_auth(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`user:password` pairs; the password may itself contain colons."""
    pairs = []
    for value in values:
        user, sep, password = value.partition(":")
        if not sep or not user or not password:
            raise InvalidRequest(f"--auth expects user:password, got {value!r}.")
        pairs.append((user, password))
    return tuple(pairs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Image studio: text to image, image to image, style transfer and upscaling.",
    )
    parser.add_argument(
        "--model",
        default=_env("model"),
        help="model preset name, hub id, local diffusers folder or single .safetensors file "
        "(env STUDIO_MODEL; default: the default preset)",
    )
    parser.add_argument(
        "--device",
        default=_env("device", "auto"),
        help="auto, cpu, cuda, cuda:N or mps (env STUDIO_DEVICE; default auto)",
    )
    parser.add_argument(
        "--dtype",
        default=_env("dtype", "auto"),
        choices=["auto", "float32", "float16", "bfloat16"],
        help="weight precision; auto is float16 on CUDA and MPS, float32 on CPU (env STUDIO_DTYPE)",
    )
    parser.add_argument(
        "--host",
        default=_env("host", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")),
        help="address to serve on; 0.0.0.0 for every interface (env STUDIO_HOST; default 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(_env("port", os.environ.get("GRADIO_SERVER_PORT", "7860"))),
        help="port to serve on (env STUDIO_PORT; default 7860)",
    )
    parser.add_argument(
        "--share",
        action="store_true",
        default=_env_flag("share"),
        help="also open a public share link (env STUDIO_SHARE=1)",
    )
    parser.add_argument(
        "--auth",
        action="append",
        default=[a for a in (_env("auth") or "").split(",") if a],
        metavar="USER:PASSWORD",
        help="require a login; repeat for several users (env STUDIO_AUTH, comma separated)",
    )
    parser.add_argument(
        "--outputs",
        default=_env("outputs", "outputs"),
        help="folder where every result is saved as PNG (env STUDIO_OUTPUTS; default ./outputs)",
    )
    parser.add_argument(
        "--presets",
        default=_env("presets", str(DEFAULT_PRESETS_DIR)),
        help="folder holding models.json, styles.json and samplers.json (env STUDIO_PRESETS)",
    )
    parser.add_argument(
        "--models",
        default=_env("models", "models"),
        help="folder of model files (checkpoints, LoRAs, upscalers) that visitors of a studio others can "
        "reach may name by path (env STUDIO_MODELS; default ./models)",
    )
    parser.add_argument(
        "--allow-any-model-path",
        action="store_true",
        default=_env_flag("allow_any_model_path"),
        help="let requests name any model folder or file on this machine even when others can reach the "
        "studio (a trusted setup; env STUDIO_ALLOW_ANY_MODEL_PATH=1)",
    )
    parser.add_argument(
        "--upscalers",
        default=_env("upscalers", "models/upscalers"),
        help="folder of extra upscaler weights, .pth or .safetensors (env STUDIO_UPSCALERS)",
    )
    parser.add_argument(
        "--loras",
        default=_env("loras", "models/loras"),
        help="folder of LoRA .safetensors files, chosen by name (env STUDIO_LORAS; default models/loras)",
    )
    parser.add_argument(
        "--style-codes",
        default=_env("style_codes"),
        metavar="FOLDER",
        help="folder of saved style codes and moodboards (env STUDIO_STYLE_CODES; default: styles in the "
        "outputs folder)",
    )
    add_backend_arguments(parser)
    parser.add_argument(
        "--offline",
        action="store_true",
        default=_env_flag("offline") or os.environ.get("HF_HUB_OFFLINE", "") not in {"", "0"},
        help="never contact the model hub; use only local files and the hub cache (env STUDIO_OFFLINE=1)",
    )
    parser.add_argument(
        "--root-path",
        default=_env("root_path", ""),
        help="URL prefix when served behind a reverse proxy, e.g. /studio (env STUDIO_ROOT_PATH)",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=int(_env("queue_size", "64")),
        help="how many requests may wait; more are turned away (env STUDIO_QUEUE_SIZE; default 64)",
    )
    parser.add_argument(
        "--max-image-side",
        type=int,
        default=int(_env("max_image_side", "2048")),
        help="largest input image side in pixels, at most 2048 (env STUDIO_MAX_IMAGE_SIDE)",
    )
    parser.add_argument(
        "--max-images",
        type=int,
        default=int(_env("max_images", "4")),
        help="images per request, 1-4 (env STUDIO_MAX_IMAGES; default 4)",
    )
    parser.add_argument(
        "--gpu-budget",
        type=float,
        default=_env_float("gpu_budget"),
        metavar="GIB",
        help="GPU memory the model cache may fill, in GiB (env STUDIO_GPU_BUDGET; default: free minus 2)",
    )
    parser.add_argument(
        "--ram-budget",
        type=float,
        default=_env_float("ram_budget"),
        metavar="GIB",
        help="CPU RAM the model cache may fill, in GiB (env STUDIO_RAM_BUDGET; default: 3/4 of the RAM)",
    )
    parser.add_argument(
        "--offload",
        choices=OFFLOAD_CHOICES,
        default=_env("offload", "auto"),
        help="auto: models on the GPU when they fit the budget, else model offload, else sequential; "
        "or force one (env STUDIO_OFFLOAD; default auto)",
    )
    parser.add_argument(
        "--public-history",
        action="store_true",
        default=_env_flag("public_history"),
        help="on a studio others can reach without --auth, show every visitor every result in History "
        "(default: each browser session sees what it made; env STUDIO_PUBLIC_HISTORY=1)",
    )
    parser.add_argument(
        "--max-runs-per-minute",
        type=int,
        default=int(_env("max_runs_per_minute", "0")),
        metavar="N",
        help="at most N runs a minute from each visitor; more are refused with a message "
        "(env STUDIO_MAX_RUNS_PER_MINUTE; default 0: no limit)",
    )
    parser.add_argument(
        "--mcp",
        action="store_true",
        default=_env_flag("mcp"),
        help="also serve every named endpoint as a tool for AI agents over MCP, at /gradio_api/mcp/ "
        "(env STUDIO_MCP=1)",
    )
    return parser


def _env_float(name: str) -> float | None:
    value = _env(name)
    try:
        return float(value) if value else None
    except ValueError:
        raise InvalidRequest(f"STUDIO_{name.upper()} must be a number of GiB, got {value!r}.") from None


def load_settings(argv: list[str] | None = None) -> Settings:
    """Settings from `argv` (flags) over the environment; `argv=[]` reads the environment alone."""
    args = build_parser().parse_args(argv if argv is not None else [])
    if args.offload not in OFFLOAD_CHOICES:  # argparse checks choices on the command line, not env defaults
        raise InvalidRequest(
            f"STUDIO_OFFLOAD must be one of {', '.join(OFFLOAD_CHOICES)}, got {args.offload!r}."
        )
    return Settings(
        model=args.model or None,
        device=args.device,
        dtype=args.dtype,
        host=args.host,
        port=args.port,
        share=args.share,
        auth=parse_auth(args.auth),
        outputs=Path(args.outputs).expanduser(),
        presets_dir=Path(args.presets).expanduser(),
        models_dir=Path(args.models).expanduser(),
        upscalers_dir=Path(args.upscalers).expanduser(),
        allow_any_model_path=args.allow_any_model_path,
        loras_dir=Path(args.loras).expanduser(),
        styles_dir=Path(args.style_codes).expanduser() if args.style_codes else None,
        backend=args.backend,
        openvino_dir=Path(args.openvino_cache).expanduser(),
        offline=args.offline,
        root_path=args.root_path,
        queue_size=args.queue_size,
        max_image_side=args.max_image_side,
        max_images=args.max_images,
        gpu_budget_gib=args.gpu_budget,
        ram_budget_gib=args.ram_budget,
        offload=args.offload,
        public_history=args.public_history,
        max_runs_per_minute=args.max_runs_per_minute,
        mcp=args.mcp,
    )


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend and --openvino-cache, which the studio and the command line share."""
    parser.add_argument(
        "--backend",
        choices=["auto", "torch", "openvino"],
        default=_env("backend", "auto"),
        help="what runs the models on a CPU: auto is OpenVINO where it is installed (it is a dependency) "
        "(env STUDIO_BACKEND)",
    )
    parser.add_argument(
        "--openvino-cache",
        default=_env("openvino_cache", "models/openvino"),
        help="folder of the models OpenVINO converted, kept for the next start (env STUDIO_OPENVINO_CACHE)",
    )
