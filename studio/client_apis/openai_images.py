"""OpenAI's Images API, `/v1`: generations, edits (a mask's transparent pixels are repainted; no mask, an
instruction to an editing model) and the models list, in OpenAI's shapes, for the official `openai` client,
Open WebUI's image editing and agents.

OpenAI's model names (dall-e-2, dall-e-3, gpt-image-1) mean the studio's default model; its own names choose
a preset. `url` answers point at `/v1/images/files/<token>`: an unguessable link to the saved PNG, as
OpenAI's are, kept for an hour.
"""

from __future__ import annotations

import io
import re
import secrets
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi import Request as HttpRequest
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image
from starlette.datastructures import UploadFile

from studio.client_apis.credentials import bearer_user
from studio.client_apis.runs import (
    ClientError,
    ClientJob,
    ClientRuns,
    Made,
    batches,
    caller_visitor,
    json_object,
    most_per_job,
)
from studio.ui.context import Studio
from studio.ui.runner import Job

PREFIX = "/v1"
OPENAI_MODELS = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5")
MOST_IMAGES = 10  # OpenAI's own limit on `n`
LINK_LIFETIME = 3600  # seconds a `url` answer stays valid, as OpenAI's do
SIZE = re.compile(r"(\d+)x(\d+)")
# Fields that change nothing here; a value other than these is recorded as ignored.
NEUTRAL = {"quality": ("auto", "standard"), "style": ("vivid", "natural"), "output_format": ("png",),
           "background": ("auto", "opaque"), "moderation": ("auto", "low"), "output_compression": (100,),
           "input_fidelity": ("low",)}  # fmt: skip
QUIET = {"user", "stream", "partial_images"}
TAKEN = {"prompt", "model", "n", "size", "response_format", "image", "image[]", "mask"}


class Links:
    """Unguessable links to saved results, each valid for `LINK_LIFETIME` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, tuple[Path, float]] = {}

    def add(self, path: Path) -> str:
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._paths = {t: (p, at) for t, (p, at) in self._paths.items() if now - at < LINK_LIFETIME}
            self._paths[token] = (path, now)
        return token

    def path(self, token: str) -> Path | None:
        with self._lock:
            found = self._paths.get(token)
        if found is None or time.monotonic() - found[1] >= LINK_LIFETIME:
            return None
        return found[0]


class ImagesApi:
    def __init__(self, studio: Studio, runs: ClientRuns) -> None:
        self.studio = studio
        self.runs = runs
        self.links = Links()

    def model(self, name: Any) -> str | None:
        """The studio's model for an OpenAI model name (None: the studio's default)."""
        name = str(name or "").strip()
        if not name or name in OPENAI_MODELS:
            return None
        if name not in self.model_names():
            raise ClientError(
                404,
                f"The model {name!r} does not exist here. Choose one of: {', '.join(self.model_names())}.",
            )
        return name

    def model_names(self) -> list[str]:
        presets = self.studio.presets
        return list(dict.fromkeys([presets.default_model, *presets.models]))

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "studio"}
                                           for name in self.model_names()]}  # fmt: skip

    def read(self, fields: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[int, int]], str]:
        """The request values every task shares, the batches of `n` images, and the answer's format."""
        prompt = str(fields.get("prompt") or "").strip()
        if not prompt:
            raise ClientError(400, "prompt: say what to draw.")
        try:
            count = int(fields.get("n") or 1)
        except ValueError as error:
            raise ClientError(400, f"n must be a number of images (got {fields.get('n')!r}).") from error
        if not 1 <= count <= MOST_IMAGES:
            raise ClientError(400, f"n must be between 1 and {MOST_IMAGES} (got {count}).")
        answer = str(fields.get("response_format") or "b64_json")
        if answer not in ("b64_json", "url"):
            raise ClientError(400, f"response_format must be b64_json or url (got {answer!r}).")
        ignored = [
            f"{name}={value}"
            for name, value in fields.items()
            if name not in TAKEN
            and name not in QUIET
            and value not in (None, "")
            and value not in NEUTRAL.get(name, ())
        ]
        values = {"prompt": prompt, "model": self.model(fields.get("model")), "ignored_parameters": ignored}
        return values, batches(-1, count, most_per_job(self.studio.settings)), answer

    def generations(self, fields: dict[str, Any], http: HttpRequest, user: str | None) -> dict[str, Any]:
        values, plan, answer = self.read(fields)
        size = SIZE.fullmatch(str(fields.get("size") or ""))
        if size and int(size[1]) > 0 and int(size[2]) > 0:
            values["aspect_ratio"] = self.studio.presets.ratio_of(int(size[1]), int(size[2]))
        elif fields.get("size") not in (None, "", "auto"):
            raise ClientError(
                400, f"size must be WIDTHxHEIGHT, such as 1024x1024, or auto (got {fields['size']!r})."
            )
        return self.made("txt2img", values, plan, answer, http, user)

    def edits(self, fields: dict[str, Any], http: HttpRequest, user: str | None) -> dict[str, Any]:
        """An image repainted where its mask (or, with no mask, the image itself) is transparent; an image
        with no transparency anywhere is edited as a whole by an instruction-editing model."""
        values, plan, answer = self.read(fields)
        images = [fields[name] for name in ("image", "image[]") if isinstance(fields.get(name), Image.Image)]
        if not images:
            raise ClientError(400, "image: send the image to edit as a file (multipart form data).")
        image = images[0]
        mask = fields.get("mask")
        if mask is not None and not isinstance(mask, Image.Image):
            raise ClientError(
                400, "mask: send it as a PNG file whose transparent pixels mark what to repaint."
            )
        if mask is not None and mask.size != image.size:
            raise ClientError(
                400,
                f"The mask is {mask.width}×{mask.height}; it must be the image's size, "
                f"{image.width}×{image.height}.",
            )
        size = SIZE.fullmatch(str(fields.get("size") or ""))
        if size and (int(size[1]), int(size[2])) != image.size:  # an edit keeps the image's own size
            values["ignored_parameters"].append(f"size={fields['size']}")
        repaint = transparent_area(mask if mask is not None else image)
        if repaint is not None:
            return self.made(
                "inpaint",
                {**values, "image": image.convert("RGB"), "mask": repaint},
                plan,
                answer,
                http,
                user,
            )
        if mask is not None:
            raise ClientError(
                400, "The mask has no transparent pixels: make transparent what should be repainted."
            )
        editors = self.studio.presets.editors()
        if values["model"] is None and editors:
            values["model"] = editors[0]
        return self.made("edit", {**values, "image": image.convert("RGB")}, plan, answer, http, user)

    def made(self, task: str, values: dict[str, Any], plan: list[tuple[int, int]], answer: str,
             http: HttpRequest, user: str | None) -> dict[str, Any]:  # fmt: skip
        job = ClientJob(task, caller_visitor(http, user), images=sum(count for _, count in plan))
        results: list[Made] = self.runs.run(
            job,
            [Job(task, {**values, "seed": seed, "num_images": count}) for seed, count in plan],
            http,
            user,
        )
        data = []
        for one in results:
            item: dict[str, Any] = {"revised_prompt": one.parameters.prompt}
            if answer == "url" and one.path is not None:
                item["url"] = str(http.url_for("openai_image_file", token=self.links.add(one.path)))
            else:
                item["b64_json"] = one.base64()
            data.append(item)
        return {"created": int(time.time()), "data": data}


def transparent_area(image: Image.Image) -> Image.Image | None:
    """White where `image` is transparent (what to repaint), black elsewhere; None when nothing is."""
    if "A" not in image.getbands() and "transparency" not in image.info:
        return None
    alpha = image.convert("RGBA").getchannel("A")
    repaint = alpha.point(lambda value: 255 if value < 128 else 0)
    return repaint if repaint.getbbox() else None


def openai_error(error: ClientError) -> JSONResponse:
    """OpenAI's error shape."""
    kind = {401: "invalid_api_key", 404: "model_not_found"}.get(error.status)
    return JSONResponse(
        {
            "error": {
                "message": error.message,
                "type": "invalid_request_error" if error.status < 500 else "server_error",
                "param": None,
                "code": kind,
            }
        },  # fmt: skip
        status_code=error.status,
    )


async def form_fields(http: HttpRequest) -> dict[str, Any]:
    """A multipart (or JSON) body's fields, its image files opened."""
    if http.headers.get("content-type", "").startswith("application/json"):
        return await json_object(http, refused=400)
    try:
        form = await http.form()
    except Exception as error:  # Starlette's parser raises several kinds for a malformed body
        raise ClientError(400, f"The body is not multipart form data ({error}).") from error
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            try:
                image = Image.open(io.BytesIO(data))
                image.load()
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
                raise ClientError(
                    400, f"{name}: {value.filename or 'the file'} could not be read as an image ({error})."
                ) from error
            fields.setdefault(name, image)  # several image[]: the first is edited
        else:
            fields[name] = value
    return fields


def router(studio: Studio, runs: ClientRuns) -> APIRouter:
    api = ImagesApi(studio, runs)
    routes = APIRouter(prefix=PREFIX)

    async def answered(http: HttpRequest, work: Any, read: Any) -> Response:
        """`work(fields, http, user)` (a job's, when there is a body to `read`; else `work()`) as JSON."""
        try:
            user = bearer_user(http, studio.settings)
            fields = await read(http) if read else None
            arguments = [] if read is None else [fields, http, user]
            return JSONResponse(await runs.in_thread(work, *arguments, runs_job=read is not None))
        except ClientError as error:
            return openai_error(error)
        except (TypeError, ValueError, AttributeError) as error:  # a field of the wrong kind
            return openai_error(ClientError(400, f"A field has a value of the wrong kind ({error})."))

    @routes.post("/images/generations")
    async def generations(http: HttpRequest) -> Response:
        return await answered(http, api.generations, partial(json_object, refused=400))

    @routes.post("/images/edits")
    async def edits(http: HttpRequest) -> Response:
        return await answered(http, api.edits, form_fields)

    @routes.get("/models")
    async def models(http: HttpRequest) -> Response:
        return await answered(http, api.models, None)

    @routes.get("/images/files/{token}", name="openai_image_file")
    async def image_file(token: str) -> Response:
        path = api.links.path(token)
        if path is None or not path.is_file():
            return openai_error(ClientError(404, "This image link has expired or never existed."))
        return FileResponse(path, media_type="image/png")

    return routes
