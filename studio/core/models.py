"""Where a model comes from and how its weights are loaded: preset name, hub id, local folder or one file.

Loading is the real diffusers loading code (`from_pretrained` / `from_single_file`); only what to load and
how to explain failures is decided here. Pickle checkpoints (.ckpt, .pt, .bin) are refused: they can run code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import torch

from studio.core.devices import DeviceConfig
from studio.core.errors import InvalidRequest, ModelUnavailable
from studio.core.families import Family, family_of
from studio.core.presets import ModelPreset, Presets

log = logging.getLogger(__name__)

# diffusers passes huggingface_hub an argument it deprecated, on every config read from the hub: a warning
# on each start that nobody running the studio can act on.
warnings.filterwarnings(
    "ignore", message="The `local_dir_use_symlinks` argument is deprecated", category=UserWarning
)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl"}
SINGLE_FILE_SUFFIXES = {".safetensors", ".gguf"}  # a checkpoint in one file; GGUF holds a transformer only


@dataclass(frozen=True)
class ModelSource:
    name: str  # what the user chose: a preset name, or the path or id itself
    location: str  # hub id, absolute folder path or absolute file path
    kind: Literal["hub", "folder", "file"]
    preset: ModelPreset | None = None


def resolve_model(reference: str | None, presets: Presets) -> ModelSource:
    """Turn what the user typed or picked into a `ModelSource`, or say clearly why it cannot be one."""
    reference = (reference or "").strip() or presets.default_model
    preset = presets.models.get(reference)
    location = preset.source if preset else presets.local_names.get(reference, reference)
    name = reference

    path = Path(location).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise InvalidRequest(
                f"The folder {path} is not a diffusers model: it has no model_index.json. "
                "Point to a folder saved with save_pretrained, or to a single .safetensors file."
            )
        return ModelSource(name, str(path.resolve()), "folder", preset)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise InvalidRequest(
                f"{path.name} is a pickle checkpoint, which can run code when loaded, so the studio does not "
                "load it. Convert it to .safetensors, or use the model's diffusers folder."
            )
        if suffix not in SINGLE_FILE_SUFFIXES:
            raise InvalidRequest(
                f"{path.name} is not a model file: use a .safetensors or .gguf checkpoint, or a folder."
            )
        return ModelSource(name, str(path.resolve()), "file", preset)
    looks_like_path = (
        location.startswith(("/", ".", "~"))
        or location.count("/") > 1
        or "\\" in location
        or path.suffix.lower() in PICKLE_SUFFIXES | SINGLE_FILE_SUFFIXES
    )
    if looks_like_path:
        raise InvalidRequest(f"Model path {location} does not exist or cannot be read.")
    if HUB_ID.match(location):
        return ModelSource(name, location, "hub", preset)
    raise InvalidRequest(
        f"Unknown model {reference!r}: not a preset ({', '.join(presets.models)}), "
        "not an existing folder, .safetensors or .gguf file, and not a hub id like org/name."
    )


# -- reaching the hub --------------------------------------------------------------------------------------

_REACHABILITY: dict[tuple[str, int], tuple[float, bool]] = {}


def hub_reachable(timeout: float = 3.0, ttl: float = 60.0) -> bool:
    """A quick TCP probe of the hub, cached briefly: the hub client itself retries for ~20 s when offline."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    address = (
        endpoint.hostname or "huggingface.co",
        endpoint.port or (80 if endpoint.scheme == "http" else 443),
    )
    checked = _REACHABILITY.get(address)
    if checked and time.monotonic() - checked[0] < ttl:
        return checked[1]
    try:
        with socket.create_connection(address, timeout=timeout):
            reachable = True
    except OSError:
        reachable = False
    _REACHABILITY[address] = (time.monotonic(), reachable)
    return reachable


MODEL_HINT = "or pass a local diffusers folder or a .safetensors file with --model /path/to/model."


def _offline_message(source: ModelSource, hint: str) -> str:
    if source.preset:
        what = f"Model {source.location!r} (preset {source.name!r})"
    elif source.location in source.name:  # "Captioner 'org/name'" names its hub id already
        what = source.name
    elif source.name != source.location:
        what = f"{source.name} ({source.location!r})"
    else:
        what = f"Model {source.location!r}"
    return (
        f"{what} is not on this machine and the model hub cannot be reached. Supply it in one of these ways: "
        f"download it where there is a network (`hf download {source.location}`) and copy the hub cache "
        f"(~/.cache/huggingface) here; {hint}"
    )


def weights_source(name: str, location: str) -> ModelSource:
    """Where extra weights (a ControlNet, an IP-Adapter, detector weights) come from: a folder or a hub id.

    `name` says what they are, for messages.
    """
    path = Path(location).expanduser()
    if path.is_dir():
        return ModelSource(name, str(path.resolve()), "folder")
    if HUB_ID.match(location):
        return ModelSource(name, location, "hub")
    raise InvalidRequest(f"{name}: {location} is neither an existing folder nor a hub id like org/name.")


def on_this_machine(source: ModelSource) -> bool:
    """Whether a model can be loaded without the hub: a local folder or file, or a hub model whose
    `model_index.json` is in the hub cache."""
    if source.kind != "hub":
        return Path(source.location).exists()
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(source.location, "model_index.json"), str)


def weight_bytes_on_disk(source: ModelSource) -> int:
    """The size of a local model's weight files, which loading will about take in memory (0 for a hub id:
    not known before it is found in the hub cache)."""
    path = Path(source.location)
    if source.kind == "file":
        return path.stat().st_size
    if source.kind == "folder":
        return sum(f.stat().st_size for f in path.rglob("*.safetensors") if ".fp16." not in f.name)
    return 0


# -- loading -----------------------------------------------------------------------------------------------


def _model_index(source: ModelSource, local_only: bool) -> dict[str, Any]:
    """A diffusers model's model_index.json: its pipeline class and each component's class."""
    from diffusers import DiffusionPipeline

    if source.kind == "folder":
        return json.loads((Path(source.location) / "model_index.json").read_text(encoding="utf-8"))
    return dict(DiffusionPipeline.load_config(source.location, local_files_only=local_only))


def _pipeline_class_name(source: ModelSource, local_only: bool) -> str:
    return str(_model_index(source, local_only).get("_class_name", ""))


def is_gguf(source: ModelSource) -> bool:
    return source.kind == "file" and source.location.lower().endswith(".gguf")


def quantization_config(quantize: str, dtype: torch.dtype) -> Any:
    """diffusers' config that loads a pipeline's transformer with weight-only `quantize` (a key of
    devices.QUANTIZATIONS other than "none"), computing in `dtype`."""
    from diffusers import BitsAndBytesConfig, PipelineQuantizationConfig, TorchAoConfig

    if quantize == "nf4":
        nf4 = {"bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype}
        config: Any = BitsAndBytesConfig(load_in_4bit=True, **nf4)
    else:
        from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig

        config = TorchAoConfig({"int8": Int8WeightOnlyConfig, "fp8": Float8WeightOnlyConfig}[quantize]())
    return PipelineQuantizationConfig(quant_mapping={"transformer": config})


def denoiser_quantization(device_config: DeviceConfig, family: Family, source: ModelSource) -> str | None:
    """The weight-only quantization a model of `family` loads its denoiser with: a GGUF file's own;
    --quantize's, for a transformer family (a UNet is small enough as it is); None for none."""
    if is_gguf(source):
        return "gguf"
    quantize = device_config.quantize
    return quantize if quantize != "none" and family.denoiser == "transformer" else None


def _from_pretrained(
    source: ModelSource, device_config: DeviceConfig, local_only: bool, reuse: dict[str, Any]
) -> Any:
    from diffusers import DiffusionPipeline

    class_name = _pipeline_class_name(source, local_only)
    family = family_of(class_name)
    dtype = device_config.dtype
    options: dict[str, Any] = {"dtype": dtype, **reuse}
    if family.name == "sd":
        options.update(safety_checker=None, requires_safety_checker=False)
    quantize = denoiser_quantization(device_config, family, source)
    if quantize is not None:
        options["quantization_config"] = quantization_config(quantize, dtype)
    if source.kind == "hub":
        options["local_files_only"] = local_only
    # Half-precision weight files, where a repository has them, halve the download and the load.
    variants = ["fp16", None] if dtype != torch.float32 and source.kind == "hub" else [None]
    for variant in variants:
        try:
            return DiffusionPipeline.from_pretrained(source.location, variant=variant, **options)
        except ValueError as error:
            if variant is None or "variant" not in str(error):
                raise
    raise AssertionError("unreachable")


# -- parts two models share ---------------------------------------------------------------------------------

SAMPLES = 8  # evenly spaced 64 KiB reads that tell two weight files apart


def file_identity(path: Path) -> str:
    """What a file holds, told cheaply: its size, its first MiB (all of a config, a safetensors file's whole
    header of names, shapes and offsets) and eight 64 KiB samples spread through it. Two different weight
    files (a fine-tune changes every weight) differ in these; hashing them whole would take seconds a GB."""
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with path.open("rb") as file:
        digest.update(file.read(1 << 20))
        for sample in range(1, SAMPLES + 1):
            file.seek(size * sample // (SAMPLES + 1))
            digest.update(file.read(1 << 16))
    return digest.hexdigest()


def _local_folder(source: ModelSource) -> Path | None:
    """The folder a diffusers model's files are in on this machine: a local folder, or a hub model's
    snapshot in the hub cache; None when it is not here."""
    if source.kind == "folder":
        return Path(source.location)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source.location, local_files_only=True))
    except Exception:  # not in the hub cache (yet): loaded as it is, nothing to share
        return None


def shareable_parts(source: ModelSource) -> dict[str, str]:
    """What each part of a transformer-family model that another model may hold too is (its text encoders
    and autoencoder: every part with weights but the transformer), by component name: the model's class and
    its files' identities. T5 serves FLUX.1 and SD 3.5, Qwen2.5-VL Qwen-Image and its editing model, a GGUF
    transformer's base parts the base model itself. Empty where nothing is shared: a UNet family (OpenVINO
    lets its weights go), a .safetensors checkpoint, a hub model not yet downloaded."""
    if source.kind == "file" and not is_gguf(source):
        return {}
    if is_gguf(source):
        source = _gguf_base(source)
    folder = _local_folder(source)
    if folder is None or not (folder / "model_index.json").is_file():  # a download cut short: no sharing
        return {}
    index = _model_index(source, local_only=True)
    family = family_of(str(index.get("_class_name", "")))
    if family.denoiser != "transformer":
        return {}
    parts = {}
    for name, spec in index.items():
        files = sorted((folder / name).glob("*.safetensors")) if not name.startswith("_") else []
        if name == family.denoiser or not files:
            continue
        identities = [file_identity(file) for file in [*(folder / name).glob("config.json"), *files]]
        parts[name] = hashlib.blake2b(repr((spec, identities)).encode(), digest_size=16).hexdigest()
    return parts


def _gguf_base(source: ModelSource) -> ModelSource:
    """Where a GGUF transformer's other parts and configs come from (see `_base_of`)."""
    return weights_source(
        f"The base model of {Path(source.location).name}", _base_of(source, _tensor_names(source))
    )


def _tensor_names(source: ModelSource) -> dict[str, Any]:
    """A GGUF file's tensors by name, as shapes only (no weights read): enough to tell its model."""
    with _unreadable_said(source):
        import gguf

        reader = gguf.GGUFReader(source.location)
        return {t.name: torch.empty(list(reversed(t.shape.tolist())), device="meta") for t in reader.tensors}


def _read_single_file(source: ModelSource) -> dict[str, Any]:
    from diffusers.loaders.single_file_utils import load_single_file_checkpoint

    with _unreadable_said(source):
        return load_single_file_checkpoint(source.location)


@contextmanager
def _unreadable_said(source: ModelSource) -> Iterator[None]:
    """A checkpoint file that cannot be read said plainly."""
    try:
        yield
    except ImportError as error:  # diffusers reads GGUF with the gguf package
        raise ModelUnavailable(f"{Path(source.location).name} is read with gguf: pip install gguf") from error
    except Exception as error:  # safetensors and gguf raise their own error types for damaged files
        raise ModelUnavailable(
            f"{Path(source.location).name} could not be read as a {Path(source.location).suffix} checkpoint "
            f"({error}). The file may be incomplete or damaged: download it again."
        ) from error


def _base_of(source: ModelSource, checkpoint: dict[str, Any]) -> str:
    """The diffusers model (hub id or folder) a single file takes its configs and other parts from: its
    preset's `base`, or the repository diffusers infers from the file's tensor names."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS as DEFAULT_BASES
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    if source.preset and source.preset.base:
        base = Path(source.preset.base).expanduser()
        return str(base.resolve()) if base.is_dir() else source.preset.base
    model_type = infer_diffusers_model_type(checkpoint)
    if model_type == "v1" and is_gguf(source):  # "v1" is also what diffusers says when it knows no names
        raise InvalidRequest(
            f"Which model {Path(source.location).name} belongs to cannot be told from its tensor names (a "
            "transformer saved in diffusers' own layout): name that model as `base` in a model preset."
        )
    return DEFAULT_BASES[model_type]["pretrained_model_name_or_path"]


def _from_single_file(source: ModelSource, device_config: DeviceConfig, local_only: bool) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    checkpoint = _read_single_file(source)
    base = _base_of(source, checkpoint)
    xl = infer_diffusers_model_type(checkpoint).startswith("xl")
    pipeline_class = StableDiffusionXLPipeline if xl else StableDiffusionPipeline
    options: dict[str, Any] = {"dtype": device_config.dtype, "local_files_only": local_only, "config": base}
    if pipeline_class is StableDiffusionPipeline:
        options.update(safety_checker=None, requires_safety_checker=False)
    # The checkpoint holds weights only; the component configs come from its base model.
    return pipeline_class.from_single_file(source.location, **options)


def _from_gguf(
    source: ModelSource, device_config: DeviceConfig, local_only: bool, reuse: dict[str, Any]
) -> Any:
    """A pipeline whose transformer is the GGUF file's, dequantized layer by layer as it runs, and whose
    other parts (text encoders, VAE, scheduler) are its base model's, or the loaded ones in `reuse`."""
    import diffusers
    from diffusers import DiffusionPipeline, GGUFQuantizationConfig

    name = Path(source.location).name
    base = _gguf_base(source)
    if local_only and not on_this_machine(base):
        raise ModelUnavailable(
            f"{name} is the transformer of {base.location}, whose other parts (text encoders, VAE) are not "
            "on this machine, and the hub cannot be reached now. Download them where there is a network "
            f"(`hf download {base.location} --exclude 'transformer/*'`) and copy the hub cache "
            "(~/.cache/huggingface) here, or name a local folder of that model as `base` in a model preset."
        )
    index = _model_index(base, local_only)
    family = family_of(str(index.get("_class_name", "")))
    if family.denoiser != "transformer":
        raise InvalidRequest(
            f"{name}: GGUF files are read for the transformer families (FLUX, SD 3.5, Qwen-Image, Z-Image, "
            f"SANA...); its base model is {family.label}."
        )
    dtype = device_config.dtype
    transformer = getattr(diffusers, index["transformer"][1]).from_single_file(
        _read_single_file(source),
        config=base.location,
        subfolder="transformer",
        quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
        dtype=dtype,
        local_files_only=local_only,
    )
    return DiffusionPipeline.from_pretrained(
        base.location, transformer=transformer, dtype=dtype, local_files_only=local_only, **reuse
    )


# diffusers builds a model's layers under accelerate's `init_empty_weights` and its own `no_init_weights`,
# which patch torch.nn for the whole process while they run: a second load at that moment (another cache
# in the same process, a weight read back) would get its layers on the meta device, or uninitialised.
ONE_LOAD_AT_A_TIME = threading.RLock()


def load_weights(
    source: ModelSource, offline: bool, load: Callable[[bool], Any], hint: str = MODEL_HINT
) -> Any:
    """Run `load(local_only)`: from disk first, from the hub only when it is reachable and allowed; one
    load at a time in the process.

    Every failure becomes a `ModelUnavailable` that says what is wrong and what to do.
    """
    with ONE_LOAD_AT_A_TIME:
        return _load_weights(source, offline, load, hint)


def _load_weights(source: ModelSource, offline: bool, load: Callable[[bool], Any], hint: str) -> Any:
    try:
        if source.kind == "file":
            return load(offline or not hub_reachable())
        if source.kind == "folder":
            return load(True)
        try:
            return load(True)
        except OSError as error:  # not in the hub cache
            if offline or not hub_reachable():
                raise ModelUnavailable(_offline_message(source, hint)) from error
            log.info("downloading %s from the hub", source.location)
            return load(False)
    except (ModelUnavailable, InvalidRequest):
        raise
    except OSError as error:
        if source.kind == "file":
            raise ModelUnavailable(
                f"{Path(source.location).name} needs the configuration of its base model, which is not "
                "in the hub cache and cannot be downloaded now. Connect once to fetch it, or use a diffusers "
                "folder."
            ) from error
        raise ModelUnavailable(f"Model {source.name!r} could not be loaded: {error}") from error
    except Exception as error:  # a broken folder: missing weights, mismatched shapes, bad JSON
        raise ModelUnavailable(
            f"Model {source.name!r} could not be loaded: {type(error).__name__}: {error}".rstrip(". ") + "."
        ) from error


def load_pipeline(
    source: ModelSource, device_config: DeviceConfig, *, offline: bool, reuse: dict[str, Any] | None = None
) -> Any:
    """A diffusers pipeline for `source` in RAM, in the configured dtype, or raise `ModelUnavailable`;
    `reuse`: components already loaded (for another model) that it takes instead of loading its own."""
    started = time.perf_counter()
    reuse = reuse or {}
    if is_gguf(source):
        load = partial(_from_gguf, source, device_config, reuse=reuse)
    elif source.kind == "file":
        load = partial(_from_single_file, source, device_config)
    else:
        load = partial(_from_pretrained, source, device_config, reuse=reuse)
    pipe = load_weights(source, offline, load)  # each takes local_only
    # Weights stay in RAM: the model cache moves them to the GPU when its budget holds them.
    if device_config.attention == "xformers":
        pipe.enable_xformers_memory_efficient_attention()
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded %s in %.1fs", source.location, time.perf_counter() - started)
    return pipe


def load_denoiser(source: ModelSource, device_config: DeviceConfig, component: str, *, offline: bool) -> Any:
    """Only the denoiser (`component`: "unet" or "transformer") of a diffusers model: a dedicated
    inpainting checkpoint (SD's 9-channel UNet, FLUX.1 Fill's transformer) shares everything else."""
    from diffusers import AutoModel

    def load(local_only: bool) -> Any:
        options: dict[str, Any] = {"subfolder": component, "dtype": device_config.dtype}
        if source.kind == "hub":
            options["local_files_only"] = local_only
        return AutoModel.from_pretrained(source.location, **options)

    if source.kind == "file":
        raise InvalidRequest("A dedicated inpainting model must be a diffusers folder or a hub id.")
    denoiser = load_weights(source, offline, load)  # in RAM, like every model: the cache places it
    if device_config.attention == "xformers":
        denoiser.enable_xformers_memory_efficient_attention()
    return denoiser
