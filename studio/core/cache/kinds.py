"""The kinds of model the cache keeps beside base models, declared once: what each one's key is named, in
what precision it is kept, and whether it may wait in RAM while an offloaded run uses it.

A pipeline asks its lease for a model by kind (`lease.model(CONTROLNET, source, load)`); the kind, not the
pipeline, makes the cache key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from studio.core.cache.registry import CacheKey
from studio.core.devices import DeviceConfig

# The precision a kind is kept in: the device's; always float32 (ONNX and OpenVINO networks, the
# detectors); or half only where a GPU computes in float16 (the upscalers).
Precision = Literal["device", "float32", "half on a GPU"]


@dataclass(frozen=True)
class ModelKind:
    component: str  # the cache key's component; "{part}" in it names one of several ("detector:{part}")
    precision: Precision = "device"
    offloadable: bool = False  # a pipeline component, which an offloaded run may leave in RAM

    def dtype_name(self, device_config: DeviceConfig) -> str:
        if self.precision == "device":
            return device_config.dtype_name
        on_gpu_half = device_config.device.type == "cuda" and device_config.dtype == torch.float16
        return "float16" if self.precision == "half on a GPU" and on_gpu_half else "float32"

    def key(
        self, source: str, device_config: DeviceConfig, *, part: str = "", variant: str | None = None
    ) -> CacheKey:
        return CacheKey(source, self.component.format(part=part), self.dtype_name(device_config), variant)


CAPTIONER = ModelKind("captioner")
CONTROLNET = ModelKind("controlnet", offloadable=True)
DETECTOR = ModelKind("detector:{part}", "float32")  # a ControlNet's annotator, by structure
FAST_DECODER = ModelKind("taesd")
IP_ADAPTER = ModelKind("ip_adapter", offloadable=True)
LORA = ModelKind("lora")  # its variant: the UNet it is put into
NEURAL_STYLE = ModelKind("onnx", "float32")  # an onnxruntime session
REDUX = ModelKind("redux", offloadable=True)  # FLUX.1 Redux's image encoder and embedder
OPENVINO = ModelKind("openvino {part}", "float32")  # a converted base-model component; variant: its folder
UPSCALER = ModelKind("upscaler", "half on a GPU")
