"""Settings of one studio process, declared once in `Settings`: each field's default, its flag, its help and
how its text reads. The command line (`python app.py --help`), the environment variables and README's
configuration table all come from that one declaration.

Every flag has an environment variable, `STUDIO_<FLAG>` (`--max-images` is `STUDIO_MAX_IMAGES`), so a Space
or a container can be configured without a command line. Flags win over the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.devices import QUANTIZATIONS
from studio.core.errors import InvalidRequest
from studio.core.memory import OFFLOAD_CHOICES
from studio.core.requests import MAX_INPUT_SIDE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PRESETS_DIR = PROJECT_ROOT / "presets"
BACKENDS = ("auto", "torch", "openvino")
DTYPES = ("auto", "float32", "float16", "bfloat16")
TRUE_WORDS = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Option:
    """How a setting is given: its flag (and so its variable), its help, and how its text reads."""

    flag: str
    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] = ()
    switch: bool = False  # on when given; its variable is 1, true, yes or on
    repeated: bool = False  # given once per value; its variable holds them comma separated
    metavar: str | None = None
    shown_default: str | None = None  # the default as people read it, where the value alone would not say
    also_from: str | None = None  # another variable read when STUDIO_<FLAG> is not set (Gradio's own)

    @property
    def variable(self) -> str:
        return "STUDIO_" + self.flag.removeprefix("--").replace("-", "_").upper()


def option(default: Any, flag: str, help: str, **how: Any) -> Any:
    return dataclasses.field(default=default, metadata={"option": Option(flag, help, **how)})


def parse_auth(value: str) -> tuple[str, str]:
    """`user:password`; the password may itself contain colons."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise InvalidRequest(f"--auth expects user:password, got {value!r}.")
    return user, password


def folder(value: str) -> Path:
    return Path(value).expanduser()


@dataclass(frozen=True)
class Settings:
    model: str | None = option(
        None,
        "--model",
        "model preset name, hub id, local diffusers folder, or one .safetensors or .gguf file",
        shown_default="the default preset",
    )
    device: str = option("auto", "--device", "auto, cpu, cuda, cuda:N or mps")
    dtype: str = option(
        "auto", "--dtype", "weight precision; auto is float16 on CUDA and MPS, float32 on CPU", choices=DTYPES
    )
    quantize: str = option(
        "none",
        "--quantize",
        "weight-only quantization of a transformer family's denoiser (FLUX, SD 3.5, Qwen-Image...) to fit a "
        "smaller GPU: int8 (torchao; a CPU too), fp8 (torchao; Ada, Hopper), nf4 (bitsandbytes; CUDA)",
        choices=tuple(QUANTIZATIONS),
    )
    host: str = option(
        "127.0.0.1",
        "--host",
        "address to serve on; 0.0.0.0 for every interface",
        also_from="GRADIO_SERVER_NAME",
    )
    port: int = option(7860, "--port", "port to serve on", parse=int, also_from="GRADIO_SERVER_PORT")
    share: bool = option(False, "--share", "also open a public share link", switch=True)
    auth: tuple[tuple[str, str], ...] = option(
        (),
        "--auth",
        "require a login; repeat for several users",
        parse=parse_auth,
        repeated=True,
        metavar="USER:PASSWORD",
    )
    api_keys: tuple[str, ...] = option(
        (),
        "--api-key",
        "a key OpenAI-style clients must send (Authorization: Bearer KEY) to the /v1 images API; repeat for "
        "several",
        repeated=True,
        metavar="KEY",
    )
    api_keys_file: Path | None = option(
        None,
        "--api-keys-file",
        "a file of /v1 API keys, one a line, read again at each request (keys added or removed take effect "
        "at once)",
        parse=folder,
        metavar="FILE",
    )
    outputs: Path = option(
        Path("outputs"), "--outputs", "folder where every result is saved as PNG", parse=folder
    )
    presets_dir: Path = option(
        DEFAULT_PRESETS_DIR,
        "--presets",
        "folder of the presets: models.json, styles.json, samplers.json…",
        parse=folder,
        shown_default="the project's presets folder",
    )
    models_dir: Path = option(
        Path("models"),
        "--models",
        "folder of model files (checkpoints, LoRAs, upscalers) that visitors of a studio others can reach "
        "may name by path",
        parse=folder,
    )
    upscalers_dir: Path = option(
        Path("models/upscalers"),
        "--upscalers",
        "folder of extra upscaler weights, .pth or .safetensors",
        parse=folder,
    )
    loras_dir: Path = option(
        Path("models/loras"), "--loras", "folder of LoRA .safetensors files, chosen by name", parse=folder
    )
    styles_dir: Path | None = option(
        None,
        "--style-codes",
        "folder of saved style codes and moodboards",
        parse=folder,
        metavar="FOLDER",
        shown_default="styles in the outputs folder",
    )
    allow_any_model_path: bool = option(
        False,
        "--allow-any-model-path",
        "let requests name any model folder or file on this machine even when others can reach the studio "
        "(a trusted setup)",
        switch=True,
    )
    backend: str = option(
        "auto",
        "--backend",
        "what runs the models on a CPU: auto is OpenVINO where it is installed (it is a dependency)",
        choices=BACKENDS,
    )
    openvino_cache: Path = option(
        Path("models/openvino"),
        "--openvino-cache",
        "folder of the models OpenVINO converted, kept for the next start",
        parse=folder,
    )
    offline: bool = option(
        False,
        "--offline",
        "never contact the model hub; use only local files and the hub cache",
        switch=True,
        also_from="HF_HUB_OFFLINE",
    )
    root_path: str = option("", "--root-path", "URL prefix when served behind a reverse proxy, e.g. /studio")
    ray: str | None = option(
        None,
        "--ray",
        "run the tasks in Ray Serve replicas, each with its own model cache: a cluster's address, or local "
        'to start one on this machine (pip install -e ".[ray]")',
        metavar="ADDRESS",
    )
    replicas: int = option(
        1, "--replicas", "how many Ray Serve replicas run the tasks (with --ray)", parse=int, metavar="N"
    )
    min_replicas: int | None = option(
        None,
        "--min-replicas",
        "with --max-replicas: the fewest replicas autoscaling keeps",
        parse=int,
        metavar="N",
    )
    max_replicas: int | None = option(
        None,
        "--max-replicas",
        "autoscale the Ray Serve replicas up to N on the requests waiting (instead of --replicas)",
        parse=int,
        metavar="N",
    )
    queue_size: int = option(
        64, "--queue-size", "how many requests may wait; more are turned away", parse=int
    )
    max_image_side: int = option(
        MAX_INPUT_SIDE,
        "--max-image-side",
        f"largest input image side in pixels, at most {MAX_INPUT_SIDE}",
        parse=int,
    )
    max_images: int = option(
        4,
        "--max-images",
        "images a request may make, to cap every tab's Images slider below its own most",
        parse=int,
    )
    gpu_budget_gib: float | None = option(
        None,
        "--gpu-budget",
        "GPU memory the model cache may fill, in GiB",
        parse=float,
        metavar="GIB",
        shown_default="free GPU memory minus 2 GiB",
    )
    ram_budget_gib: float | None = option(
        None,
        "--ram-budget",
        "CPU RAM the model cache may fill, in GiB",
        parse=float,
        metavar="GIB",
        shown_default="3/4 of the RAM",
    )
    offload: str = option(
        "auto",
        "--offload",
        "auto: models on the GPU when they fit the budget, else model offload, else sequential; or force one",
        choices=OFFLOAD_CHOICES,
    )
    public_history: bool = option(
        False,
        "--public-history",
        "on a studio others can reach without --auth, show every visitor every result in History (else each "
        "browser session sees what it made)",
        switch=True,
    )
    max_queued_per_user: int = option(
        0,
        "--max-queued-per-user",
        "at most N runs of one person waiting or running at once; more are refused with a message (0: any)",
        parse=int,
        metavar="N",
    )
    profile_drafts: int = option(
        4,
        "--profile-drafts",
        "drafts each image steered by a taste profile (--p) is the best of: more comes nearer the taste, and "
        "each costs one more denoising",
        parse=int,
        metavar="K",
    )
    max_runs_per_minute: int = option(
        0,
        "--max-runs-per-minute",
        "at most N runs a minute from each visitor; more are refused with a message (0: no limit)",
        parse=int,
        metavar="N",
    )
    mcp: bool = option(
        False,
        "--mcp",
        "also serve every named endpoint as a tool for AI agents over MCP, at /gradio_api/mcp/",
        switch=True,
    )

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
    def most_replicas(self) -> int:
        """How many replicas may run at once with --ray: the autoscaling ceiling, or the fixed count."""
        return self.max_replicas or self.replicas

    @property
    def profiles_folder(self) -> Path:
        """Where people's taste profiles are kept, a folder each (studio/core/profiles.py)."""
        return self.outputs / "profiles"

    @property
    def model_folders(self) -> tuple[Path, ...]:
        return (self.models_dir, self.loras_dir, self.upscalers_dir)


def options(names: Iterable[str] | None = None) -> dict[str, Option]:
    """The settings' options by field name, in the order declared (`names`: those alone)."""
    wanted = None if names is None else set(names)
    return {
        field.name: field.metadata["option"]
        for field in dataclasses.fields(Settings)
        if wanted is None or field.name in wanted
    }


def _from_environment(name: str, how: Option) -> Any:
    """The setting as its variable gives it, parsed; its default where none is set."""
    text = os.environ.get(how.variable)
    if text is None and how.also_from:
        text = os.environ.get(how.also_from)
    if text is None or (not text.strip() and not how.switch):
        return Settings.__dataclass_fields__[name].default
    if how.switch:
        return text.strip().lower() in TRUE_WORDS
    try:
        if how.repeated:
            return tuple(how.parse(part) for part in text.split(",") if part)
        value = how.parse(text)
    except ValueError:
        kind = {int: "a whole number", float: "a number"}.get(how.parse, f"a value for {how.flag}")
        raise InvalidRequest(f"{how.variable} must be {kind}, got {text!r}.") from None
    if how.choices and value not in how.choices:  # argparse checks the flag's choices, not its default
        raise InvalidRequest(f"{how.variable} must be one of {', '.join(how.choices)}, got {text!r}.")
    return value


def add_setting_arguments(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """A flag for each setting (`names`: those alone), whose default is its environment variable's value."""
    for name, how in options(names).items():
        help = f"{how.help} (env {how.variable}; default {default_text(name)})".replace("%", "%%")
        metavar = how.metavar or how.flag.removeprefix("--").upper().replace("-", "_")
        if how.switch:
            default = _from_environment(name, how)
            parser.add_argument(how.flag, dest=name, action="store_true", default=default, help=help)
        elif how.repeated:  # the variable's values are read after parsing, where no flag gave any
            parser.add_argument(
                how.flag, dest=name, action="append", type=how.parse, default=None, metavar=metavar, help=help
            )
        else:
            parser.add_argument(
                how.flag,
                dest=name,
                type=how.parse,
                default=_from_environment(name, how),
                choices=how.choices or None,
                metavar=None if how.choices else metavar,
                help=help,
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Image studio: text to image, image to image, style transfer and upscaling.",
    )
    add_setting_arguments(parser)
    return parser


def load_settings(argv: list[str] | None = None) -> Settings:
    """Settings from `argv` (flags) over the environment; `argv=[]` reads the environment alone."""
    args = vars(build_parser().parse_args(argv if argv is not None else []))
    for name, how in options().items():
        if how.repeated:  # the flags given replace the variable's values, not add to them
            args[name] = tuple(args[name]) if args[name] else _from_environment(name, how)
    return Settings(**{**args, "model": args["model"] or None})


def default_text(name: str) -> str:
    """A setting's default as people read it (README and `--help`)."""
    how, default = options([name])[name], Settings.__dataclass_fields__[name].default
    if how.shown_default is not None:
        return how.shown_default
    if how.switch:
        return "off"
    return "none" if default in (None, "", ()) else str(default)


def configuration_table() -> str:
    """README's configuration table, from the settings as declared."""
    rows = ["| flag | environment | default | |", "|---|---|---|---|"]
    for name, how in options().items():
        variable = f"`{how.variable}=1`" if how.switch else f"`{how.variable}`"
        if how.repeated:
            variable += " (comma separated)"
        shown = default_text(name)
        shown = shown if how.shown_default or shown in ("off", "none") else f"`{shown}`"
        rows.append(f"| `{how.flag}` | {variable} | {shown} | {how.help} |")
    return "\n".join(rows)


if __name__ == "__main__":  # README's table, to paste in after a setting changes
    print(configuration_table())
