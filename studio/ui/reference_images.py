"""A row of reference image slots, each with its weight: Text to Image's style references, Blend's images.

The request takes the filled slots as one tuple of images and one of weights; the page and the API give
them slot by slot (`style_image_1`, `style_image_weight_1`, ...), so each is a plain, documented parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from pipelines.text_to_image import REFERENCE_WEIGHTS
from studio.ui.common import readable
from studio.ui.endpoints import IMAGE_FILE, Parameter
from studio.ui.i18n import tr


@dataclass
class ReferenceSlots:
    images_field: str  # the request's tuple of images, e.g. "style_images"
    weights_field: str  # and of their weights, e.g. "style_image_weights"
    slot: str  # one slot's parameter name, e.g. "style_image" (then style_image_1, style_image_weight_1)
    images: list[gr.Image]
    weights: list[gr.Slider]

    def parameters(self, what: str) -> list[Parameter]:
        """One image and one weight parameter per slot, for the endpoint."""
        images = [
            Parameter(f"{self.slot}_{n}", image, IMAGE_FILE, None, f"{what} {n} (optional).")
            for n, image in enumerate(self.images, 1)
        ]
        low, high = REFERENCE_WEIGHTS
        weights = [
            Parameter(
                f"{self.slot}_weight_{n}",
                weight,
                float,
                weight.value,
                f"how much {what.lower()} {n} counts against the others ({low:g}-{high:g}, 1 as usual).",
            )
            for n, weight in enumerate(self.weights, 1)
        ]
        return images + weights

    def gathered(self, values: dict[str, Any]) -> dict[str, Any]:
        """`values` with the slots' parameters replaced by the request's two tuples (empty slots left out)."""
        values = dict(values)
        filled = []
        for n in range(1, len(self.images) + 1):
            image, weight = values.pop(f"{self.slot}_{n}", None), values.pop(f"{self.slot}_weight_{n}", None)
            if image is not None:
                filled.append((image, 1.0 if weight is None else weight))
        values[self.images_field] = tuple(image for image, _ in filled)
        values[self.weights_field] = tuple(weight for _, weight in filled)
        return values


def reference_slots(
    prefix: str,
    count: int,
    label: str,
    *,
    images_field: str,
    weights_field: str,
    slot: str,
    max_side: int | None,
    height: int = 150,
) -> ReferenceSlots:
    """`count` image slots in a row, each with a weight slider under it."""
    images, weights = [], []
    low, high = REFERENCE_WEIGHTS
    with gr.Row(equal_height=False):
        for n in range(1, count + 1):
            with gr.Column(min_width=110):
                images.append(reference_image(tr(f"{label} {n}"), f"{prefix}-{n}", max_side, height))
                weights.append(
                    gr.Slider(
                        minimum=low,
                        maximum=high,
                        step=0.1,
                        value=1.0,
                        label=tr("Weight"),
                        elem_id=f"{prefix}-weight-{n}",
                    )
                )
    return ReferenceSlots(images_field, weights_field, slot, images, weights)


def reference_image(label: str, elem_id: str, max_side: int | None, height: int = 150) -> gr.Image:
    """One small image slot, uploaded or pasted, given to the task as a picture."""
    return readable(
        gr.Image(label=label, type="pil", sources=["upload", "clipboard"], height=height, elem_id=elem_id),
        max_side,
    )
