"""AUTOMATIC1111's web API, `/sdapi/v1`, as Open WebUI, SillyTavern, the `webuiapi` client and the Photoshop
plugins call it: A1111's field names turned into the studio's requests, its answers in A1111's shapes.

What A1111 does that the studio does not (hires fix, face restoration, subseeds, scripts…) is not refused:
the image is made without it and says so in its `Ignored parameters`, as the page does for a prompt's.
Values that ask for nothing (A1111's defaults, which clients send on every call) are not listed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
from fastapi import APIRouter
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse
from PIL import Image, ImageOps

from pipelines.parts.common import image_seed
from pipelines.upscale import LANCZOS, UpscaleRequest
from studio.client_apis.credentials import basic_user
from studio.client_apis.runs import (
    ClientError,
    ClientJob,
    ClientRuns,
    Made,
    batches,
    caller_visitor,
    decoded_image,
    json_object,
    most_per_job,
    png_base64,
)
from studio.core.metadata import GenerationParameters, read_parameters
from studio.core.peer_metadata import parse_parameters_text
from studio.core.settings import Settings
from studio.ui.context import Studio
from studio.ui.runner import Job

PREFIX = "/sdapi/v1"

# What the studio takes, by A1111's names (see `Fields.values`), and what only concerns the client.
TAKEN = {
    "prompt", "negative_prompt", "styles", "seed", "sampler_name", "sampler_index", "scheduler", "steps",
    "cfg_scale", "width", "height", "tiling", "n_iter", "batch_size", "override_settings", "send_images",
}  # fmt: skip
TAKEN_BY_IMG2IMG = {
    "init_images", "denoising_strength", "mask", "mask_blur", "inpainting_mask_invert", "resize_mode",
}  # fmt: skip
QUIET = {
    "save_images", "do_not_save_samples", "do_not_save_grid", "override_settings_restore_afterwards",
    "include_init_images", "force_task_id", "comments", "url", "auth", "infotext",
}  # fmt: skip
FROM_SCRATCH = (2, 3)  # inpainting_fill values that repaint the masked area from noise
# Fields the studio does not do whose neutral values are not just "empty" ones (None, 0, False, "", [], {}):
# the values that ask for nothing, A1111's defaults and webuiapi's.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "subseed": (-1, 0),
    "seed_resize_from_h": (-1, 0),
    "seed_resize_from_w": (-1, 0),
    "eta": (1, None),
    "s_noise": (1, None),
    "s_tmax": (math.inf, 0, None),
    "clip_skip": (1, 0, None),
    "image_cfg_scale": (1.5, None),
    "initial_noise_multiplier": (1, None),
    # 1, original: the masked area starts from the image, at the strength asked; 2 and 3, latent noise or
    # nothing: it starts from scratch (the studio's strength 1). 0, fill (with colours from around it), is
    # not the studio's: made as original, and listed.
    "inpainting_fill": (1, *FROM_SCRATCH, None),
    "inpaint_full_res": (True, False, 1, 0, None),
    "inpaint_full_res_padding": (32, 0, None),
}
HIRES_FIX = "enable_hr"  # its settings (hr_*, and a txt2img's denoising_strength) count only when it is on
OVERRIDES_TAKEN = {"sd_model_checkpoint"}
OVERRIDES_NEUTRAL = {"CLIP_stop_at_last_layers": (1,), "sd_vae": ("Automatic", "None")}
SCHEDULES = ("automatic", "karras")  # what /schedulers offers
OWN_SPACING = ("automatic", "uniform", "normal", "simple")  # schedules that mean the sampler's own steps


def is_empty(value: Any) -> bool:
    return value is None or value is False or value in ("", 0, [], {}) or value == [False]


def ignored_fields(body: dict[str, Any], task: str) -> list[str]:
    """The fields of `body` the studio will not honour, as `name=value`, for the image's record."""
    ignored = []
    for name, value in body.items():
        neutral = value in NEUTRAL[name] if name in NEUTRAL else is_empty(value)
        taken = name in TAKEN or (task == "img2img" and name in TAKEN_BY_IMG2IMG)
        if taken or name in QUIET or neutral:
            continue
        # A txt2img's denoising_strength is the hires fix's second pass
        hires_setting = name.startswith(("hr_", "firstphase_")) or name == "denoising_strength"
        if hires_setting and not body.get(HIRES_FIX):
            continue
        if name == "alwayson_scripts" and all(is_empty((s or {}).get("args")) for s in value.values()):
            continue  # webuiapi names the extensions it found, with nothing for them to do
        ignored.append(f"{name}={json.dumps(value)[:60]}")
    for name, value in (body.get("override_settings") or {}).items():
        if (
            name not in OVERRIDES_TAKEN
            and not is_empty(value)
            and value not in OVERRIDES_NEUTRAL.get(name, ())
        ):
            ignored.append(f"override_settings.{name}={json.dumps(value)[:60]}")
    return ignored


@dataclass
class Fields:
    """An A1111 txt2img or img2img body, read: the studio's task and request values, and its batches."""

    task: str
    values: dict[str, Any]
    batches: list[tuple[int, int]]  # (seed, images) of each job in turn (A1111's n_iter x batch_size)
    send_images: bool

    @property
    def seeds(self) -> list[int]:
        return [image_seed(seed, index) for seed, count in self.batches for index in range(count)]


class A1111Api:
    """The routes, on one studio; `model` is what `/options` set (None: the studio's default)."""

    def __init__(self, studio: Studio, runs: ClientRuns) -> None:
        self.studio = studio
        self.runs = runs
        self.model: str | None = None

    @property
    def settings(self) -> Settings:
        return self.studio.settings

    # -- reading a body -------------------------------------------------------------------------------

    def checkpoint(self, title: Any) -> str:
        """The studio's model for an A1111 checkpoint title (ours are model names; "name [hash]" and the
        file name also match), refused when it is none of `/sd-models`."""
        models = self.sd_models()
        wanted = str(title or "").split(" [")[0].strip()
        for model in models:
            if wanted in (model["title"], model["model_name"], model["filename"]):
                return model["model_name"]
        choices = ", ".join(model["title"] for model in models)
        raise ClientError(400, f"Model {wanted!r} not found. Choose one of: {choices}.")

    def sampler(self, body: dict[str, Any], ignored: list[str]) -> str | None:
        name = body.get("sampler_name") or body.get("sampler_index")
        schedule = str(body.get("scheduler") or "automatic").lower()
        if not name:
            return None
        ours = self.studio.presets.sampler_named(name, None if schedule in OWN_SPACING else schedule)
        if ours is None:
            return str(name)  # the studio's refusal names the samplers it has
        if schedule not in OWN_SPACING and not ours.lower().endswith(schedule):
            ignored.append(f"scheduler={schedule}")
        return ours

    def styles(self, body: dict[str, Any], ignored: list[str]) -> list[str]:
        """The studio's styles named; others are listed as ignored, as A1111 passes over styles it lacks
        ("None", which some clients send for no style, is no style here either)."""
        named = [str(name) for name in body.get("styles") or [] if name not in (None, "", "None")]
        ignored += [f"styles={name}" for name in named if name not in self.studio.presets.styles]
        return [name for name in named if name in self.studio.presets.styles]

    def read(self, body: dict[str, Any], task: str) -> Fields:
        presets = self.studio.presets
        ignored = ignored_fields(body, task)
        model = (body.get("override_settings") or {}).get("sd_model_checkpoint")
        values: dict[str, Any] = {
            "prompt": body.get("prompt") or "",
            "negative_prompt": body.get("negative_prompt") or "",
            "styles": self.styles(body, ignored),
            "model": self.checkpoint(model) if model else self.model,
            "steps": body.get("steps"),
            "guidance_scale": body.get("cfg_scale"),
            "sampler": self.sampler(body, ignored),
            "tile": bool(body.get("tiling")),
        }
        width, height = body.get("width") or 0, body.get("height") or 0
        if task == "txt2img" and width > 0 and height > 0:
            values["aspect_ratio"] = presets.ratio_of(int(width), int(height))
        if task != "txt2img":
            values.update(self.source_image(body, width, height))
            task = "inpaint" if "mask" in values else "img2img"
        values["ignored_parameters"] = ignored
        count = int(body.get("n_iter") or 1) * int(body.get("batch_size") or 1)
        per_job = min(int(body.get("batch_size") or 1), most_per_job(self.settings))
        seed = body.get("seed")
        plan = batches(int(seed) if seed is not None else -1, max(count, 1), max(per_job, 1))
        return Fields(
            task, {k: v for k, v in values.items() if v is not None}, plan, body.get("send_images", True)
        )

    def source_image(self, body: dict[str, Any], width: int, height: int) -> dict[str, Any]:
        """An img2img body's image (resized to width x height by its `resize_mode`, as A1111 does), its
        strength, and its mask for inpainting (white repaints; `inpainting_mask_invert` swaps)."""
        images = body.get("init_images") or []
        if not images:
            raise ClientError(422, "init_images: send the image to start from (base64).")
        image = decoded_image(images[0], "init_images[0]")
        if width > 0 and height > 0 and image.size != (width, height):
            image = resized(
                image.convert("RGB"), (int(width), int(height)), int(body.get("resize_mode") or 0)
            )
        values: dict[str, Any] = {"image": image, "strength": body.get("denoising_strength", 0.75)}
        if body.get("mask"):
            mask = decoded_image(body["mask"], "mask").convert("L").resize(image.size)
            values["mask"] = ImageOps.invert(mask) if body.get("inpainting_mask_invert") else mask
            values["mask_blur"] = body.get("mask_blur", 4)
            if body.get("inpainting_fill") in FROM_SCRATCH:
                values["strength"] = 1.0
        return values

    # -- running ------------------------------------------------------------------------------------------

    def generate(
        self, body: dict[str, Any], http: HttpRequest, user: str | None, task: str
    ) -> dict[str, Any]:
        fields = self.read(body, task)
        visitor = caller_visitor(http, user)
        job = ClientJob(fields.task, visitor, images=sum(count for _, count in fields.batches))
        jobs = [
            Job(fields.task, {**fields.values, "seed": seed, "num_images": count})
            for seed, count in fields.batches
        ]
        made = self.runs.run(job, jobs, http, user)
        return {
            "images": [one.base64() for one in made] if fields.send_images else [],
            "parameters": body,
            "info": json.dumps(self.info(made, fields, body)),
        }

    def info(self, made: list[Made], fields: Fields, body: dict[str, Any]) -> dict[str, Any]:
        """A1111's `info`: the first image's settings, every image's seed and infotext."""
        records = [one.parameters for one in made]
        first = records[0] if records else None
        seeds = [p.seed for p in records] or fields.seeds
        return {
            "prompt": first.prompt if first else fields.values.get("prompt", ""),
            "all_prompts": [p.prompt for p in records],
            "negative_prompt": first.negative_prompt if first else fields.values.get("negative_prompt", ""),
            "all_negative_prompts": [p.negative_prompt for p in records],
            "seed": seeds[0] if seeds else -1,
            "all_seeds": seeds,
            "subseed": -1,
            "all_subseeds": [-1] * len(seeds),
            "sampler_name": first.sampler if first else fields.values.get("sampler"),
            "scheduler": "Automatic",
            "steps": first.steps if first else body.get("steps"),
            "cfg_scale": first.guidance_scale if first else body.get("cfg_scale"),
            "width": first.width if first else body.get("width"),
            "height": first.height if first else body.get("height"),
            "batch_size": body.get("batch_size", 1),
            "sd_model_name": first.model if first else self.model,
            "denoising_strength": fields.values.get("strength"),
            "styles": fields.values.get("styles", []),
            "index_of_first_image": 0,
            "infotexts": [p.to_text() for p in records],
            "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
            "version": "image-studio",
        }

    def progress(self, skip_current_image: bool) -> dict[str, Any]:
        job = self.runs.current
        if job is None:
            return {"progress": 0.0, "eta_relative": 0.0, "state": idle_state(), "current_image": None,
                    "textinfo": None}  # fmt: skip
        elapsed, fraction = time.monotonic() - job.started, job.fraction
        return {
            "progress": fraction,
            "eta_relative": elapsed / fraction - elapsed if fraction > 0 else 0.0,
            "state": {
                **idle_state(),
                "job": job.task,
                "job_count": job.images,
                "job_no": job.made,
                "sampling_step": job.step,
                "sampling_steps": job.steps,
                "interrupted": job.interrupted,
                "skipped": job.skipped,
            },
            "current_image": None if job.preview is None or skip_current_image else png_base64(job.preview),
            "textinfo": None,
        }

    # -- what the studio has ------------------------------------------------------------------------------

    def sd_models(self) -> list[dict[str, Any]]:
        presets = self.studio.presets
        names = dict.fromkeys([presets.default_model, *presets.models])
        shown_paths = not self.settings.reachable_by_others
        models = []
        for name in names:
            preset = presets.models.get(name)
            source = preset.source if preset else presets.local_names.get(name, name)
            filename = source if shown_paths or preset is None or "/" not in source else name
            models.append({"title": name, "model_name": name, "hash": None, "sha256": None,
                           "filename": filename, "config": None})  # fmt: skip
        return models

    def options(self) -> dict[str, Any]:
        return {
            "sd_model_checkpoint": self.model or self.studio.presets.default_model,
            "sd_checkpoint_hash": None,
            "sd_vae": "Automatic",
            "CLIP_stop_at_last_layers": 1,
            "samples_format": "png",
            "outdir_samples": "" if self.settings.reachable_by_others else str(self.settings.outputs),
        }

    def set_options(self, body: dict[str, Any]) -> None:
        """Only the model is the studio's to set (clients send back every option they read)."""
        if body.get("sd_model_checkpoint"):
            self.model = self.checkpoint(body["sd_model_checkpoint"])

    def upscalers(self) -> list[dict[str, Any]]:
        names = self.studio.pipeline("upscale").upscalers.names()
        return [{"name": name, "model_name": name, "model_path": None, "model_url": None, "scale": 4}
                for name in names]  # fmt: skip

    def extra_single_image(self, body: dict[str, Any], http: HttpRequest, user: str | None) -> dict[str, Any]:
        image = decoded_image(body.get("image"), "image")
        upscaler = body.get("upscaler_1") or "None"
        values: dict[str, Any] = {
            "image": image,
            "upscaler": LANCZOS if upscaler in ("None", "Lanczos") else upscaler,
        }
        if int(body.get("resize_mode") or 0) == 1:
            values["target_width"], values["target_height"] = (
                body.get("upscaling_resize_w"),
                body.get("upscaling_resize_h"),
            )
        else:
            values["scale"] = body.get("upscaling_resize", UpscaleRequest.default("scale"))
        job = ClientJob("upscale", caller_visitor(http, user), images=1)
        made = self.runs.run(job, [Job("upscale", values)], http, user)
        if not made:
            raise ClientError(409, "Interrupted before the image was finished.")
        return {"html_info": made[0].parameters.to_text(), "image": made[0].base64()}

    def interrogate(self, body: dict[str, Any], http: HttpRequest, user: str | None) -> dict[str, Any]:
        image = decoded_image(body.get("image"), "image").convert("RGB")
        job = ClientJob("describe", caller_visitor(http, user), images=1)
        answers = self.runs.run(job, [Job("describe", {"image": image})], http, user)
        return {"caption": answers[0][0] if answers else ""}  # the describe task's first suggestion


def resized(image: Image.Image, size: tuple[int, int], mode: int) -> Image.Image:
    """A1111's resize modes: 0 just resize, 1 crop and resize, 2 resize and fill (3, latent: as 0)."""
    if mode == 1:
        return ImageOps.fit(image, size, Image.Resampling.LANCZOS)
    if mode == 2:
        return ImageOps.pad(image, size, Image.Resampling.LANCZOS)
    return image.resize(size, Image.Resampling.LANCZOS)


def idle_state() -> dict[str, Any]:
    return {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "", "job_count": 0,
            "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}  # fmt: skip


def png_info(body: dict[str, Any]) -> dict[str, Any]:
    """A1111's `/png-info`: the `parameters` text, the PNG's other text chunks, and the text parsed."""
    image = decoded_image(body.get("image"), "image")
    text = image.info.get("parameters")
    if not isinstance(text, str):
        found = read_parameters(image)
        text = found.to_text() if isinstance(found, GenerationParameters) else ""
    items = {k: v for k, v in image.info.items() if isinstance(v, str) and k != "parameters"}
    parsed: dict[str, Any] = {}
    if text:
        fields = parse_parameters_text(text)
        parsed = {"Prompt": fields.pop("prompt"), "Negative prompt": fields.pop("negative_prompt")}
        parsed.update({k: v for k, v in fields.items() if k[0].isupper() and k != "Size"})
        if "width" in fields:
            parsed["Size-1"], parsed["Size-2"] = fields["width"], fields["height"]
    return {"info": text or "", "items": items, "parameters": parsed}


def memory() -> dict[str, Any]:
    ram = psutil.virtual_memory()
    return {"ram": {"free": ram.available, "used": ram.total - ram.available, "total": ram.total},
            "cuda": {"error": "see /gradio_api for the studio's own memory panel"}}  # fmt: skip


def a1111_error(error: ClientError) -> JSONResponse:
    """A1111's error shape."""
    name = {401: "Unauthorized", 404: "Not Found", 409: "Conflict", 422: "Unprocessable Entity"}.get(
        error.status, "Bad Request" if error.status < 500 else "Internal Server Error"
    )
    headers = {"WWW-Authenticate": 'Basic realm="studio"'} if error.status == 401 else None
    return JSONResponse(
        {"error": name, "detail": error.message, "body": "", "errors": error.message},
        status_code=error.status,
        headers=headers,
    )


def router(studio: Studio, runs: ClientRuns) -> APIRouter:
    api = A1111Api(studio, runs)
    routes = APIRouter()

    def route(
        path: str, method: str, work: Callable[..., Any], *, body: bool = False, caller: bool = False,
        runs_job: bool = False,
    ) -> None:  # fmt: skip
        """`work(body?, http?, user?)` answered as JSON, in a worker thread; a refusal in A1111's shape."""

        async def endpoint(http: HttpRequest) -> Any:
            try:
                user = basic_user(http, studio.settings)
                arguments: list[Any] = [await json_object(http, refused=422)] if body else []
                arguments += [http, user] if caller else []
                return JSONResponse(await runs.in_thread(work, *arguments, runs_job=runs_job))
            except ClientError as error:
                return a1111_error(error)
            except (TypeError, ValueError, AttributeError) as error:  # a field of the wrong kind
                return a1111_error(ClientError(422, f"A field has a value of the wrong kind ({error})."))

        routes.add_api_route(path, endpoint, methods=[method])

    for path, listing in {
        "sd-models": api.sd_models,
        "samplers": lambda: [
            {"name": name, "aliases": list(s.aliases), "options": {}}
            for name, s in studio.presets.samplers.items()
        ],  # fmt: skip
        "schedulers": lambda: [
            {
                "name": name,
                "label": name.capitalize(),
                "aliases": None,
                "default_rho": -1,
                "need_inner_model": False,
            }
            for name in SCHEDULES
        ],  # fmt: skip
        "upscalers": api.upscalers,
        "latent-upscale-modes": lambda: [],
        "sd-vae": lambda: [],
        "hypernetworks": lambda: [],
        "face-restorers": lambda: [],
        "realesrgan-models": lambda: [u for u in api.upscalers() if "esrgan" in u["name"].lower()],
        "loras": lambda: [
            {"name": name, "alias": name, "path": name, "metadata": {}}
            for name in studio.pipeline("txt2img").loras.names()
        ],  # fmt: skip
        "prompt-styles": lambda: [
            {"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
            for s in studio.presets.styles.values()
        ],  # fmt: skip
        "embeddings": lambda: {"loaded": {}, "skipped": {}},
        "scripts": lambda: {"txt2img": [], "img2img": []},
        "script-info": lambda: [],
        "memory": memory,
        "cmd-flags": lambda: command_flags(studio.settings),
        "options": api.options,
    }.items():
        route(f"{PREFIX}/{path}", "GET", listing)

    def progress(http: HttpRequest, user: str | None) -> dict[str, Any]:
        return api.progress(http.query_params.get("skip_current_image") == "true")

    route(f"{PREFIX}/progress", "GET", progress, caller=True)
    route(f"{PREFIX}/txt2img", "POST", lambda body, http, user: api.generate(body, http, user, "txt2img"),
          body=True, caller=True, runs_job=True)  # fmt: skip
    route(f"{PREFIX}/img2img", "POST", lambda body, http, user: api.generate(body, http, user, "img2img"),
          body=True, caller=True, runs_job=True)  # fmt: skip
    route(
        f"{PREFIX}/extra-single-image", "POST", api.extra_single_image, body=True, caller=True, runs_job=True
    )
    route(f"{PREFIX}/interrogate", "POST", api.interrogate, body=True, caller=True, runs_job=True)
    route(f"{PREFIX}/png-info", "POST", png_info, body=True)
    # The web UI's Gradio 3 queue, which some plugins (cyanic-sd-krita) ask for first to see the server is up.
    route("/queue/status", "GET", lambda: {"msg": "estimation", "queue_size": runs.unfinished, "rank": None,
                                           "rank_eta": None, "queue_eta": 0})  # fmt: skip
    route(f"{PREFIX}/options", "POST", api.set_options, body=True)

    def interrupt(http: HttpRequest, user: str | None) -> None:
        runs.stop(caller_visitor(http, user))

    def skip(http: HttpRequest, user: str | None) -> None:
        runs.stop(caller_visitor(http, user), skip=True)

    route(f"{PREFIX}/interrupt", "POST", interrupt, caller=True)
    route(f"{PREFIX}/skip", "POST", skip, caller=True)
    for path in ("refresh-checkpoints", "refresh-vae", "refresh-loras", "reload-checkpoint"):
        route(f"{PREFIX}/{path}", "POST", lambda: None)  # the studio reads its folders at each request
    route(f"{PREFIX}/unload-checkpoint", "POST", lambda: studio.cache.free_idle() and None)
    return routes


def command_flags(settings: Settings) -> dict[str, Any]:
    """The studio's settings by flag, as A1111 lists its own; logins and keys never leave the server."""
    secret = {"auth", "api_keys"}
    return {
        name: "***"
        if name in secret and value
        else (str(value) if not isinstance(value, int | float | bool | None) else value)
        for name, value in vars(settings).items()
    }
