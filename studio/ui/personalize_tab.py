"""The Personalize tab: rate pairs of images, get a taste profile, and steer prompts with it (`--p CODE`).

Pairs come from the person's own history, or, while it holds fewer than `MIN_HISTORY` images, from two
images made for one of `PAIR_PROMPTS`. Each choice refits the profile at once (studio/core/taste.py); the
status says how many pairs are rated and how well the profile predicts pairs it was not fitted on. "Steer
my prompts" makes the profile steer every run that names none; `--p CODE` names one in any prompt. Picking
an image of a grid (Vary, Enhance) is a soft vote for it over its neighbours (grid_actions.soft_vote).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from pipelines.parts.image_prompts import seen_now
from studio.core.history_index import Query
from studio.core.taste import NO_PROFILE, Profile
from studio.ui.common import GPU_EVENT, INSTANT_EVENT, user_errors
from studio.ui.context import Studio, TabInfo
from studio.ui.endpoints import IMAGE_FILE, REQUIRED, Endpoint, Parameter
from studio.ui.grid_actions import open_image
from studio.ui.i18n import say, tr
from studio.ui.runner import Job
from studio.ui.send_to import gallery_path

TAB = TabInfo("personalize", "Personalize")
PUBLIC_INSTANT_EVENT = {**INSTANT_EVENT, "api_visibility": "public"}  # /rate and /profile: no GPU, no wait
MIN_HISTORY = 8  # fewer images of one's own than this: pairs are made from PAIR_PROMPTS instead
HISTORY_DRAWN = 200  # the newest images a pair is drawn from
PAIR_PROMPTS = (
    "a lighthouse on a cliff at dusk", "a bowl of fruit on a wooden table", "a city street after rain",
    "a portrait of an old fisherman", "a mountain lake in autumn", "a cosy reading nook",
    "a robot in a flower field", "a desert caravan at noon", "a koi pond seen from above",
    "a cabin in a snowy forest", "a neon-lit noodle bar", "a sailing ship in a storm",
)  # fmt: skip


@dataclass
class PersonalizeTab:
    profile: gr.Dropdown
    left: gr.Image
    right: gr.Image
    status: gr.Markdown


def choices(profiles: list[Profile]) -> list[tuple[str, str]]:
    return [(f"{profile.name} · {profile.code}", profile.code) for profile in profiles]


def status_text(summary: dict[str, Any]) -> str:
    """'**Mine** · --p k3vq7m2a · 23 of about 40 pairs · held-out accuracy 87 %'"""
    parts = [f"**{summary['name']}**", f"`--p {summary['code']}`"]
    parts.append(say(f"{summary['pairs']} of about {summary['pairs_wanted']} pairs"))
    if summary["accuracy"] is not None:
        parts.append(say(f"held-out accuracy {round(summary['accuracy'] * 100)} %"))
    return " · ".join(parts)


def history_pair(studio: Studio, request: gr.Request | None) -> tuple[Image.Image, Image.Image] | None:
    """Two of the asker's own images, or None when they have made too few."""
    if studio.history.index is None:
        return None
    page = studio.history.index.search(Query(per_page=HISTORY_DRAWN), studio.viewer(request))
    if len(page.entries) < MIN_HISTORY:
        return None
    first, second = random.sample(page.entries, 2)
    return open_image(str(studio.history.outputs / first.path)), open_image(
        str(studio.history.outputs / second.path)
    )


def made_pair(studio: Studio, request: gr.Request | None, progress: gr.Progress) -> tuple[Image.Image, ...]:
    """Two images made for one of the fixed prompts (unsteered, not kept in the history)."""
    values = {"prompt": random.choice(PAIR_PROMPTS), "num_images": 2, "profile": NO_PROFILE}
    made = [result.image for result in studio.runner.run(Job("txt2img", values), request, progress)]
    if len(made) < 2:
        raise gr.Error(say("Stopped before the pair was made."), print_exception=False)
    return made[0], made[1]


def create_tab(studio: Studio) -> PersonalizeTab:
    studio.pipeline("txt2img")
    gr.Markdown(
        tr(
            "Pick the image you like better, about 40 times: the studio learns your taste as a profile. "
            "Then --p CODE in any prompt (or Steer my prompts below) makes each image the best of a few "
            "drafts by your taste."
        )
    )
    with gr.Row(equal_height=True):
        profile = gr.Dropdown(label=tr("Profile"), choices=[], scale=3, elem_id="personalize-profile")
        name = gr.Textbox(label=tr("New profile's name"), max_lines=1, scale=2, elem_id="personalize-name")
        create = gr.Button(tr("New profile"), scale=1, elem_id="personalize-new")
    steer = gr.Checkbox(label=tr("Steer my prompts with this profile"), elem_id="personalize-steer")
    status = gr.Markdown(elem_id="personalize-status")
    with gr.Row(equal_height=True):
        left = gr.Image(
            type="pil", label=tr("Left"), interactive=False, height=360, elem_id="personalize-left"
        )
        right = gr.Image(
            type="pil", label=tr("Right"), interactive=False, height=360, elem_id="personalize-right"
        )
    with gr.Row():
        left_better = gr.Button(tr("Left is better"), variant="primary", elem_id="personalize-left-better")
        skip = gr.Button(tr("Skip: next pair"), elem_id="personalize-skip")
        right_better = gr.Button(tr("Right is better"), variant="primary", elem_id="personalize-right-better")
    with gr.Accordion(tr("Export or import a profile"), open=False):
        with gr.Row():
            export = gr.Button(tr("Export"), elem_id="personalize-export")
            imported = gr.UploadButton(tr("Import"), file_types=[".json"], elem_id="personalize-import")
            delete = gr.Button(tr("Delete this profile…"), elem_id="personalize-delete")
            # Asked again first: a deleted profile cannot be had back (unless it was exported).
            confirm = gr.Button(
                tr("Delete it for good"), variant="stop", visible=False, elem_id="personalize-confirm"
            )
        exported = gr.File(label=tr("Profile file"), interactive=False, elem_id="personalize-file")
    summary = gr.JSON(visible=False)
    tab = PersonalizeTab(profile, left, right, status)
    wire_profiles(studio, tab, name, create, steer, summary, (export, imported, exported, delete, confirm))
    wire_rating(studio, tab, summary, left_better, right_better, skip)
    return tab


def shown(studio: Studio, request: gr.Request | None, code: str | None = None) -> tuple[Any, ...]:
    """The profile list with `code` (else the asker's own) chosen, its status and whether it steers."""
    owner = studio.profile_owner(request)
    profiles = studio.profiles.all(owner)
    current = next((p for p in profiles if p.code == code), None) or studio.profiles.own(owner, None)
    active = studio.profiles.active(owner)
    if current is None:
        return gr.Dropdown(choices=[], value=None), say("Rate a pair to start your first profile."), False
    steering = active is not None and active.code == current.code
    return (
        gr.Dropdown(choices=choices(profiles), value=current.code),
        status_text(current.summary()),
        steering,
    )


def wire_profiles(studio: Studio, tab: PersonalizeTab, name, create, steer, summary, files) -> None:
    """Choosing, making, turning on, exporting and importing profiles; `/profile` for API callers."""
    export, imported, exported, delete, confirm = files
    outputs = [tab.profile, tab.status, steer]

    def on_load(request: gr.Request):
        return shown(studio, request)

    def made(typed: str, request: gr.Request):
        with user_errors():
            profile = studio.profiles.create(studio.profile_owner(request), typed or "")
        return (*shown(studio, request, profile.code), "")

    def chosen(code: str | None, request: gr.Request):
        return shown(studio, request, code)

    def steered(on: bool, code: str | None, request: gr.Request):
        with user_errors():
            studio.profiles.set_active(studio.profile_owner(request), code if on and code else None)

    def export_file(code: str | None, request: gr.Request):
        if not code:
            raise gr.Error(
                say("Make a profile first: there is nothing to export yet."), print_exception=False
            )
        with user_errors():
            return str(studio.profiles.exported(studio.profile_owner(request), code))

    def import_file(upload: Any, request: gr.Request):
        with user_errors(), open(gallery_path(upload), "rb") as file:
            profile = studio.profiles.imported(studio.profile_owner(request), file.read(2 * 1024**2 + 1))
        return shown(studio, request, profile.code)

    def deleted(code: str | None, request: gr.Request):
        if code:
            with user_errors():
                studio.profiles.delete(studio.profile_owner(request), code)
        return (*shown(studio, request), gr.Button(visible=False))

    def profile_summary(values: dict[str, Any], request: gr.Request, progress: gr.Progress) -> dict:
        with user_errors():
            owner = studio.profile_owner(request)
            profile = studio.profiles.own(owner, values.get("profile") or None)
            if profile is None:
                raise gr.Error(say("You have no profile yet: rate pairs on the Personalize tab to make one."))
            return profile.summary()

    studio.when_loaded(on_load, [], outputs)
    create.click(made, [name], [*outputs, name], **INSTANT_EVENT)
    tab.profile.input(chosen, [tab.profile], outputs, **INSTANT_EVENT)
    steer.input(steered, [steer, tab.profile], None, **INSTANT_EVENT)
    export.click(export_file, [tab.profile], [exported], **INSTANT_EVENT)
    imported.upload(import_file, [imported], outputs, **INSTANT_EVENT)
    delete.click(lambda: gr.Button(visible=True), None, [confirm], **INSTANT_EVENT)
    confirm.click(deleted, [tab.profile], [*outputs, confirm], **INSTANT_EVENT)
    endpoint = Endpoint(
        "profile",
        "A taste profile's summary: its code (for --p CODE), name, pairs rated and held-out accuracy.",
        [Parameter("profile", tab.profile, str, "", "the profile's code; empty: your own.")],
        profile_summary,
        streams=False,
    )
    trigger = gr.Button(visible=False, elem_id="personalize-profile-api")
    trigger.click(endpoint.fn, endpoint.inputs, [summary], api_name=endpoint.name, **PUBLIC_INSTANT_EVENT)


def wire_rating(studio: Studio, tab: PersonalizeTab, summary, left_better, right_better, skip) -> None:
    """The two choice buttons (and `/rate`), then the next pair; Skip shows the next pair only."""

    def rate(values: dict[str, Any], request: gr.Request, progress: gr.Progress) -> dict:
        better, worse = values["better"], values["worse"]
        if better is None or worse is None:
            raise gr.Error(
                say("Show a pair first, then pick the one you like better."), print_exception=False
            )
        with user_errors():
            owner = studio.profile_owner(request)
            profile = studio.profiles.own(owner, values.get("profile") or None)
            code = profile.code if profile is not None else studio.profiles.create(owner).code
            encoder = profile.encoder if profile is not None else ""
            better_seen, worse_seen = seen_now(studio.cache, [better, worse], encoder)  # if the GPU is free
            return studio.profiles.rate(owner, code, better, worse, seen=(better_seen, worse_seen)).summary()

    def next_pair(request: gr.Request, progress=gr.Progress()):
        return history_pair(studio, request) or made_pair(studio, request, progress)

    def after_rating(rated: dict | None, request: gr.Request):
        return shown(studio, request, (rated or {}).get("code"))[:2]

    endpoint = Endpoint(
        "rate",
        "Teach a taste profile one judgement: `better` was liked over `worse`. Answers the profile's code "
        "(for --p CODE), pairs rated and held-out accuracy.",
        [
            Parameter("better", tab.left, IMAGE_FILE, REQUIRED, "the image liked better."),
            Parameter("worse", tab.right, IMAGE_FILE, REQUIRED, "the image liked less."),
            Parameter(
                "profile", tab.profile, str, "", "the profile's code; empty: your own (a new one at first)."
            ),
        ],
        rate,
        streams=False,
    )
    pair = [tab.left, tab.right]
    for button, inputs, visibility in [
        (left_better, endpoint.inputs, "public"),
        (right_better, [tab.right, tab.left, tab.profile], "private"),
    ]:
        event = button.click(
            endpoint.fn, inputs, [summary], api_name=endpoint.name if visibility == "public" else None,
            **{**PUBLIC_INSTANT_EVENT, "api_visibility": visibility},
        )  # fmt: skip
        event.success(after_rating, [summary], [tab.profile, tab.status], **INSTANT_EVENT).then(
            next_pair, None, pair, show_progress_on=pair, **GPU_EVENT
        )
    skip.click(next_pair, None, pair, show_progress_on=pair, **GPU_EVENT)

    def first_pair(request: gr.Request):
        return history_pair(studio, request) or (None, None)

    studio.when_loaded(first_pair, [], pair)
