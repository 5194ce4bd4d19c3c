"""Send-to: a button under a result grid (or in PNG Info, or History) opens another tab with an image and
what made it, and may start that tab's work on it (History's Vary and Upscale).

Tabs take part without knowing each other: a tab that takes what is sent calls `SendTo.receive` with its
fields and how to fill them from a `Sent`, and `SendTo.action` for work a sender may start there; a sender
calls `SendTo.send` with its button and how to make a `Sent` from its inputs. `wire` connects them once
every tab is built. The targets under result grids are the tabs marked `takes_images` in app.py's tab
list, known before any tab is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from pipelines.diffusion import DiffusionRequest
from pipelines.parts.prompt_parameters import parse_prompt_parameters
from studio.core.metadata import GenerationParameters
from studio.ui.common import INSTANT_EVENT
from studio.ui.i18n import say, tr


@dataclass(frozen=True)
class Sent:
    """What is sent to a tab: an image file and what made it, the prompt as typed (before styles) where
    the image says so. A field left None is not sent: the receiving tab keeps what it shows ("Use seed"
    sends the seed alone; Describe's "Use this prompt", the prompt alone)."""

    path: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    styles: tuple[str, ...] | None = None
    seed: int | None = None  # -1: a random one
    steps: int | None = None
    guidance_scale: float | None = None
    sampler: str | None = None  # as its studio names it
    scheduler: str | None = None  # another studio's schedule type ("karras"), which with the sampler maps
    model: str | None = None
    width: int | None = None
    height: int | None = None
    generator: str | None = None  # the studio that made it, when not this one
    variation: str | None = None  # for Image to Image's Vary: the variation to run
    loras: str | None = None  # "name:weight, ...": ours as recorded, another studio's from its <lora:…> tags
    tile: bool | None = None
    chaos: int | None = None
    stylize: int | None = None
    aspect_ratio: str | None = None  # as asked for, where the image records it
    decoder: str | None = None  # "full" for a render done properly (Live's Enhance)

    @classmethod
    def of(cls, path: str | None, fields: dict[str, Any]) -> Sent:
        """All an image's parameters, as `read_parameters` gives them: ours in full, another studio's as
        parsed; what the image does not say is sent as the defaults that remake it."""
        ours = GenerationParameters.from_dict(fields) if "task" in fields else None
        extras = ours.extras if ours else {}
        if ours:
            prompt, loras = ours.typed_prompt, ", ".join(extras.get("loras", []))
        else:  # AUTOMATIC1111 and its kin write LoRAs into the prompt
            tagged = parse_prompt_parameters(fields.get("prompt", ""), tags_only=True)
            prompt, loras = tagged.prompt, ", ".join(tagged.loras)
        seed = fields.get("seed")
        return cls(
            path=path,
            prompt=prompt,
            negative_prompt=ours.typed_negative_prompt if ours else fields.get("negative_prompt", ""),
            styles=ours.styles if ours else (),
            seed=-1 if seed is None else seed,
            steps=fields.get("steps"),
            guidance_scale=fields.get("guidance_scale"),
            sampler=fields.get("sampler"),
            scheduler=fields.get("scheduler"),
            model=(ours.model if ours else fields.get("model")) or None,
            width=fields.get("width"),
            height=fields.get("height"),
            generator=None if ours else fields.get("generator"),
            loras=loras,
            tile=bool(extras.get("tile")),
            chaos=0,  # under --chaos an image records the settings drawn for it: they remake it as they are
            stylize=extras.get("stylize", DiffusionRequest.default("stylize")),
            aspect_ratio=extras.get("aspect_ratio"),
        )


Updates = dict[gr.components.Component, Any]  # what a fill sets: each component's new value


def sent_values(updates: dict[gr.components.Component | None, Any]) -> Updates:
    """`updates` without what was not sent (None) and the controls a tab does not have (None)."""
    return {
        component: value
        for component, value in updates.items()
        if component is not None and value is not None
    }


def image_and_prompt(image: gr.Image, prompt: gr.Textbox) -> Callable[[Sent], Updates]:
    """A fill for a tab that takes the image sent and its prompt alone."""
    return lambda sent: sent_values({image: sent.path, prompt: sent.prompt})


@dataclass(frozen=True)
class Receiver:
    outputs: list[gr.components.Component]
    fill: Callable[[Sent], Updates]  # new values of some of `outputs`


@dataclass(frozen=True)
class Action:
    """Work a tab may be asked to start on what it received: an event function with its inputs, outputs
    and event options."""

    fn: Callable[..., Any]
    inputs: list[gr.components.Component]
    outputs: list[gr.components.Component]
    options: dict[str, Any]
    after: Callable[[Any], None] | None = None  # given the action's event, to chain what follows a run


@dataclass(frozen=True)
class Sender:
    button: gr.Button
    target: str  # tab id
    inputs: list[gr.components.Component]
    sent: Callable[..., Sent | None]  # from the inputs' values; None: nothing to send (it said why)
    then: str | None = None  # an action of the target to start once it is filled


class SendTo:
    def __init__(self, image_targets: dict[str, str]) -> None:
        """`image_targets`: the tabs that take images (id -> label), in the order of their buttons."""
        self.image_targets = image_targets
        self._receivers: dict[str, Receiver] = {}
        self._actions: dict[tuple[str, str], Action] = {}
        self._senders: list[Sender] = []

    def receive(
        self, tab_id: str, outputs: list[gr.components.Component], fill: Callable[[Sent], Updates]
    ) -> None:
        self._receivers[tab_id] = Receiver(outputs, fill)

    def action(
        self,
        tab_id: str,
        name: str,
        fn: Callable[..., Any],
        inputs: list,
        outputs: list,
        *,
        after: Callable[[Any], None] | None = None,
        **options: Any,
    ) -> None:
        self._actions[(tab_id, name)] = Action(fn, inputs, outputs, options, after)

    def send(
        self,
        button: gr.Button,
        target: str,
        inputs: list[gr.components.Component],
        sent: Callable[..., Sent | None],
        *,
        then: str | None = None,
    ) -> None:
        """`then`: an action of the target tab to start once it is filled; `sent` must then raise (not return
        None) when there is nothing to send, so the action does not start."""
        self._senders.append(Sender(button, target, inputs, sent, then))

    def grid_buttons(self, prefix: str, selection: list[gr.components.Component]) -> dict[str, gr.Button]:
        """A Send to button per image-taking tab, sending the grid's selected image (the first if none):
        `selection` is what `selected_result` takes (a `ResultPanel`'s)."""

        def sent(gallery_value: list | None, params: list[dict] | None, index: int | None) -> Sent:
            return Sent.of(*selected_result(gallery_value, params, index))

        buttons = {}
        for tab_id, label in self.image_targets.items():
            buttons[tab_id] = gr.Button(tr(f"Send to {label}"), size="sm", elem_id=f"{prefix}-send-{tab_id}")
            self.send(buttons[tab_id], tab_id, selection, sent)
        return buttons

    def wire(self, tabs: gr.Tabs) -> None:
        """Connect every sender to its target tab, which opens filled in."""
        for sender in self._senders:
            receiver = self._receivers[sender.target]

            def send(*values: Any, sender: Sender = sender, receiver: Receiver = receiver):
                sent = sender.sent(*values)
                if sent is None:
                    return gr.skip()
                return {**receiver.fill(sent), tabs: gr.Tabs(selected=sender.target)}

            sent_event = sender.button.click(send, sender.inputs, [*receiver.outputs, tabs], **INSTANT_EVENT)
            if sender.then is not None:
                action = self._actions[(sender.target, sender.then)]
                options = {"api_visibility": "private", **action.options}
                run = sent_event.success(action.fn, action.inputs, action.outputs, **options)
                if action.after is not None:
                    action.after(run)


def selected_result(
    gallery_value: list | None, params: list[dict] | None, index: int | None
) -> tuple[str, dict]:
    """The file and parameters of the selected image of a result gallery (the first when none is)."""
    if not gallery_value or not params:
        raise gr.Error(say("Make an image first, then pick one in the results."), print_exception=False)
    index = index if index is not None and index < len(gallery_value) else 0
    return gallery_path(gallery_value[index]), params[index]


def gallery_path(item: Any) -> str:
    """The file of one item of a gallery's value, as the page hands it over."""
    path = item[0] if isinstance(item, list | tuple) else item
    if isinstance(path, dict):  # some Gradio versions hand gallery items over as dicts
        path = path.get("image", {}).get("path") or path.get("path")
    return str(path)
