"""Seamless tiles: circular padding on the convolutions of the UNet and the VAE, for one call only.

Each convolution then sees the image as if it wrapped around at its edges, so the result repeats without a
seam. The shared models are changed only inside the block, under the GPU lock, and put back after it: no
other run or tab sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def seamless(*models: Any) -> Iterator[None]:
    convolutions = [
        layer
        for model in models
        if model is not None
        for layer in model.modules()
        if isinstance(layer, torch.nn.Conv2d)
    ]
    before = [layer.padding_mode for layer in convolutions]
    for layer in convolutions:
        layer.padding_mode = "circular"
    try:
        yield
    finally:
        for layer, mode in zip(convolutions, before, strict=True):
            layer.padding_mode = mode
