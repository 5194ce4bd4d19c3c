"""Send-to: a button under a result grid (or in PNG Info) opens another tab with an image and what made it.

Tabs take part without knowing each other: a tab that takes what is sent calls `SendTo.receive` with its
fields and how to fill them from a `Sent`; a sender calls `SendTo.send` with its button and how to make a
`Sent` from its inputs. `wire` connects them once every tab is built. The targets under result grids are the
tabs marked `takes_images` in app.py's tab list, known before any tab is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.core.metadata import GenerationParameters
from studio.ui.common import INSTANT_EVENT
from studio.ui.widgets import ResultPanel, selected_result


@dataclass(frozen=True)
class Sent:
    """An image file and what made it, the prompt as typed (before styles) where the image says so."""

    path: str | None
    prompt: str = ""
    negative_prompt: str = ""
    styles: tuple[str, ...] = ()
    seed: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    sampler: str | None = None
    model: str | None = None  # only from our own files: another studio's model names mean nothing here
    width: int | None = None
    height: int | None = None

    @classmethod
    def of(cls, path: str | None, fields: dict[str, Any]) -> Sent:
        """From parameters as `read_parameters` gives them: ours in full, another studio's as parsed."""
        ours = GenerationParameters.from_dict(fields) if "task" in fields else None
        return cls(
            path=path,
            prompt=ours.typed_prompt if ours else fields.get("prompt", ""),
            negative_prompt=ours.typed_negative_prompt if ours else fields.get("negative_prompt", ""),
            styles=ours.styles if ours else (),
            seed=fields.get("seed"),
            steps=fields.get("steps"),
            guidance_scale=fields.get("guidance_scale"),
            sampler=fields.get("sampler"),
            model=(ours.model or None) if ours else None,
            width=fields.get("width"),
            height=fields.get("height"),
        )


@dataclass(frozen=True)
class Receiver:
    outputs: list[gr.components.Component]
    fill: Callable[[Sent], tuple]  # values for `outputs`


@dataclass(frozen=True)
class Sender:
    button: gr.Button
    target: str  # tab id
    inputs: list[gr.components.Component]
    sent: Callable[..., Sent | None]  # from the inputs' values; None: nothing to send (it said why)


class SendTo:
    def __init__(self, image_targets: dict[str, str]) -> None:
        """`image_targets`: the tabs that take images (id -> label), in the order of their buttons."""
        self.image_targets = image_targets
        self._receivers: dict[str, Receiver] = {}
        self._senders: list[Sender] = []

    def receive(
        self, tab_id: str, outputs: list[gr.components.Component], fill: Callable[[Sent], tuple]
    ) -> None:
        self._receivers[tab_id] = Receiver(outputs, fill)

    def send(
        self,
        button: gr.Button,
        target: str,
        inputs: list[gr.components.Component],
        sent: Callable[..., Sent | None],
    ) -> None:
        self._senders.append(Sender(button, target, inputs, sent))

    def grid_buttons(self, prefix: str, panel: ResultPanel) -> dict[str, gr.Button]:
        """A Send to button per image-taking tab, sending the grid's selected image (the first if none)."""

        def sent(gallery_value: list | None, params: list[dict] | None, index: int | None) -> Sent:
            return Sent.of(*selected_result(gallery_value, params, index))

        buttons = {}
        for tab_id, label in self.image_targets.items():
            buttons[tab_id] = gr.Button(f"Send to {label}", size="sm", elem_id=f"{prefix}-send-{tab_id}")
            self.send(buttons[tab_id], tab_id, panel.selection, sent)
        return buttons

    def wire(self, tabs: gr.Tabs) -> None:
        """Connect every sender to its target tab, which opens filled in."""
        for sender in self._senders:
            receiver = self._receivers[sender.target]

            def send(*values: Any, sender: Sender = sender, receiver: Receiver = receiver):
                sent = sender.sent(*values)
                if sent is None:
                    return (gr.skip(),) * (len(receiver.outputs) + 1)
                return (*receiver.fill(sent), gr.Tabs(selected=sender.target))

            sender.button.click(send, sender.inputs, [*receiver.outputs, tabs], **INSTANT_EVENT)
