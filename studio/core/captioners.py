"""Image captioners for Describe: BLIP through transformers, loaded like every other auxiliary model.

A captioner loads through the same offline-aware path as base models (`load_weights`): a local folder is
read directly, a hub id from the hub cache, or downloaded when the hub may be reached. Only `.safetensors`
weights are read, as everywhere in the studio (pickles can run code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.core.devices import DeviceConfig
from studio.core.models import ModelSource, load_weights

CAPTIONER_HINT = (
    "or set a local folder (the model and its processor, saved with save_pretrained) as its source in "
    "presets/captioners.json (--presets to use another folder), or give that folder as the captioner."
)


@dataclass
class Captioner:
    model: Any  # BlipForConditionalGeneration, in eval mode
    processor: Any  # BlipProcessor: the image resized and normalised as trained, and the tokenizer


def load_captioner(source: ModelSource, device_config: DeviceConfig, *, offline: bool) -> Captioner:
    """The captioner at `source`, in RAM in the configured dtype (the cache moves it to the device)."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    def load(local_only: bool) -> Captioner:
        model = BlipForConditionalGeneration.from_pretrained(
            source.location, dtype=device_config.dtype, local_files_only=local_only, use_safetensors=True
        )
        processor = BlipProcessor.from_pretrained(source.location, local_files_only=local_only)
        return Captioner(model.eval(), processor)

    return load_weights(source, offline, load, CAPTIONER_HINT)
