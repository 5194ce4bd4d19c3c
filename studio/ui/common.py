"""What every tab shares: the GPU concurrency group, error messages, widgets from requests."""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
import pydantic
from PIL import Image

from studio.core.errors import StudioError
from studio.core.metadata import GenerationParameters
from studio.core.requests import Request
from studio.ui.i18n import plain, say

log = logging.getLogger(__name__)

# Every event that computes on the GPU joins this one group, limited to one job at a time: Gradio's limit is
# per event, so without it four tabs would run four jobs at once.
# Model runs: every one reaches the job runner at once, whose Turns choose whose goes next (round-robin over
# people) and show each its place; Gradio's queue only bounds how many may wait (--queue-size).
GPU_EVENT = {"concurrency_id": "gpu", "concurrency_limit": None}
# Cheap events (filling fields, showing parameters) have no concurrency limit, so they never wait behind a
# GPU job; they stay in the queue because only queued events can show an error or a warning.
INSTANT_EVENT = {"concurrency_limit": None, "api_visibility": "private"}


def scrub_paths(message: str) -> str:
    """The message with every file in Gradio's upload folder named by its own name: the server's folders
    are nobody's business, and the user knows their file by its name."""
    folder = re.escape(gr.utils.get_upload_folder())
    return re.sub(folder + r"[^\s'\",)]*", lambda match: Path(match.group(0)).name, message)


def checked_by_request(component: gr.components.Component) -> gr.components.Component:
    """Leave range and choice checks to the request types, whose messages name the field and stay the
    same on the page, over the API and on the command line ("Seed must be between -1 and 4294967295")."""
    if isinstance(component, gr.Slider | gr.Number):
        precision = getattr(component, "precision", None)
        # Only numbers are rounded: anything else (a list, a word, NaN) goes on to the request type, whose
        # message names the field, rather than failing here with Gradio's anonymous error.
        component.preprocess = lambda payload: (  # type: ignore[method-assign]
            gr.Number.round_to_precision(payload, precision)
            if isinstance(payload, int | float) and math.isfinite(payload)
            else payload
        )
    elif isinstance(component, gr.Dropdown | gr.Radio) and component.type == "value":
        component.preprocess = lambda payload: payload  # type: ignore[method-assign]
    return component


BROWSER_COOKIE = "studio-browser"
# Each browser gets a random id of its own, kept a year: on a studio others can reach without logins, it
# is whose taste profiles a page reads (a session is one page load; the id outlives it).
BROWSER_HEAD = f"""<script>
(() => {{
  if (document.cookie.split("; ").some((kept) => kept.startsWith("{BROWSER_COOKIE}="))) return;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const scope = location.protocol === "https:" ? "; SameSite=None; Secure; Partitioned" : "; SameSite=Lax";
  document.cookie = "{BROWSER_COOKIE}=" + id + "; path=/; max-age=31536000" + scope;
}})();
</script>"""
_BROWSER_ID = re.compile(r"^[0-9a-f]{32}$")


def browser_of(request: gr.Request | None) -> str | None:
    """The asking browser's id (BROWSER_HEAD), when it sent one."""
    headers = getattr(request, "headers", None) or {}
    for kept in headers.get("cookie", "").split(";"):
        name, _, value = kept.strip().partition("=")
        if name == BROWSER_COOKIE and _BROWSER_ID.match(value):
            return value
    return None


def person_of(request: gr.Request | None) -> str:
    """Whom a run or a taste profile is for, as the studio tells people apart: the signed-in user, else the
    browser (its cookie id), else the session (an API client's)."""
    if getattr(request, "username", None):
        return f"user:{request.username}"
    browser = browser_of(request)
    return f"browser:{browser}" if browser else f"session:{session_of(request)}"


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "api"


def visitor_of(request: gr.Request | None) -> str:
    """Who is asking, for a per-visitor limit: the signed-in user, else the address they come from. A
    session is not a visitor (an API client makes a new one each call). Behind a proxy (a share tunnel
    on this machine, a Space's front end on a private address) it is the address that proxy saw, the
    last one it added to X-Forwarded-For; a client reaching the studio directly cannot choose it."""
    if getattr(request, "username", None):
        return f"user:{request.username}"
    client = getattr(getattr(request, "client", None), "host", None) or "local"
    forwarded = (getattr(request, "headers", None) or {}).get("x-forwarded-for", "")
    if forwarded.strip() and _behind_proxy(client):
        return f"address:{forwarded.split(',')[-1].strip()}"
    return f"address:{client}"


def _behind_proxy(peer: str) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer == "localhost"
    return address.is_loopback or address.is_private


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn failures into a message in the UI (and the API's error text); the app keeps serving."""
    try:
        yield
    except gr.Error as error:
        error.message = scrub_paths(str(error.message))
        raise
    except StudioError as error:
        raise gr.Error(say(scrub_paths(str(error))), print_exception=False) from error
    except Exception as error:
        log.exception("unexpected failure")
        what = scrub_paths(f"{type(error).__name__}: {error}")
        message = (
            f"Unexpected error ({what}). Nothing already made was lost; the details are in the server log."
        )
        raise gr.Error(say(message)) from error


def readable(
    component: gr.components.Component, max_side: int | None = None, *, enlarges: bool = False
) -> gr.components.Component:
    """Make an image input say clearly, as soon as a file is dropped, that it is not a picture or has too
    many pixels to open safely (instead of failing inside Gradio), or that it is larger than this studio
    takes (`max_side`): such an image is taken out again, since every run would refuse it. The Upscale
    tab's own input (`enlarges`) does not send people to the Upscale tab."""
    preprocess = component.preprocess
    if isinstance(component, gr.Image | gr.ImageEditor) and component.type == "pil":
        # The picture as stored, which `check_image` turns into RGB: Gradio's own conversion clips 16-bit
        # greyscale to white and shows the colour hidden under transparent pixels.
        component.image_mode = None
    component.data_model = _files_only(component.data_model, plain(component.label or "The image"))

    def checked_preprocess(payload: Any) -> Any:
        name = getattr(payload, "orig_name", None) or "The file"
        try:
            _refuse_large(payload, name, max_side, enlarges)
            value = preprocess(payload)
            if isinstance(value, Image.Image):
                value.load()  # decoded now, so a damaged file is named here, not where a run first reads it
            return value
        except gr.Error:
            raise
        except Image.DecompressionBombError as error:
            raise gr.Error(
                say(f"{name} has too many pixels to open safely."), print_exception=False
            ) from error
        except (OSError, SyntaxError, ValueError) as error:  # what PIL raises for unreadable files
            raise gr.Error(
                say(scrub_paths(f"{name} could not be read as an image ({error}).")), print_exception=False
            ) from error

    component.preprocess = checked_preprocess  # type: ignore[method-assign]
    if max_side is not None:

        def check_dropped(value: Any):
            try:
                named, size = _name_and_size(value)
            except (OSError, SyntaxError, ValueError) as error:  # not a picture: taken out, and said so
                name = (value or {}).get("orig_name") if isinstance(value, dict) else None
                gr.Warning(say(scrub_paths(f"{name or 'The file'} could not be read as an image ({error}).")))
                return None
            if size and max(size) > max_side:
                gr.Warning(say(too_large(named, size, max_side, enlarges=enlarges)))
                return None
            return gr.skip()

        # Unprocessed: the file as the page sent it (a processed value would be refused before this runs).
        # No spinner: it would cover the picture, and swallow the first strokes painted on an editor's.
        component.upload(
            check_dropped, [component], [component], preprocess=False, show_progress="hidden", **INSTANT_EVENT
        )
    return component


def _files_only(data_model: type, label: str) -> type:
    """`data_model` whose validation failure (a bare string or number where the API takes a file) is a
    message naming the input, not Gradio's general error: Gradio validates before any of our code runs."""

    def model_validate(cls, value: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return data_model.model_validate.__func__(cls, value, *args, **kwargs)
        except pydantic.ValidationError as error:
            raise gr.Error(
                say(
                    f"{label}: send a file (gradio_client's handle_file(path or URL)), "
                    f"not {type(value).__name__} {str(value)[:60]!r}."
                ),
                print_exception=False,
            ) from error

    # The same name, so the API's schema and docs are unchanged.
    return type(data_model.__name__, (data_model,), {"model_validate": classmethod(model_validate)})


def _refuse_large(payload: Any, name: str, max_side: int | None, enlarges: bool) -> None:
    """Refuse a file whose header declares more pixels than PIL opens without a warning, or a longer side
    than this studio takes, before anything decodes it: a few bytes can declare 10000×10000, which a run
    would refuse only after decoding it whole (or report as cut short)."""
    file = payload if hasattr(payload, "path") else getattr(payload, "background", None)  # an editor's
    if getattr(file, "path", None) is None:
        return
    with Image.open(file.path) as image:
        width, height = image.size
    if width * height > Image.MAX_IMAGE_PIXELS:
        raise Image.DecompressionBombError(f"{width}×{height}")
    if max_side is not None and max(width, height) > max_side:
        raise gr.Error(
            say(too_large(name, (width, height), max_side, enlarges=enlarges)), print_exception=False
        )


def too_large(name: str, size: tuple[int, int], max_side: int, *, enlarges: bool = False) -> str:
    if enlarges:
        return (
            f"{name} is {size[0]}×{size[1]}; this studio takes up to {max_side} pixels on the longer side. "
            "Make it smaller first, then enlarge it here."
        )
    return (
        f"{name} is {size[0]}×{size[1]}; this studio takes up to {max_side} pixels on the longer side. "
        "Make it smaller first (the Upscale tab can enlarge results afterwards)."
    )


def _name_and_size(payload: Any) -> tuple[str, tuple[int, int] | None]:
    """What a dropped image is called and how big it is, from the file the page sent (an image's, or an
    editor's background), read from its header."""
    if isinstance(payload, dict) and "background" in payload:
        payload = payload["background"]
    if not (isinstance(payload, dict) and payload.get("path")):
        return "The image", None
    with Image.open(payload["path"]) as image:
        return payload.get("orig_name") or Path(payload["path"]).name, image.size


def slider(request_type: type[Request], name: str, *, step: float = 1, **options: Any) -> gr.Slider:
    """A slider whose range is the request field's bounds, so the UI and validation never disagree
    (`maximum` may only lower the upper bound, as a server limit does)."""
    low, high = request_type.bounds(name)
    high = min(high, options.pop("maximum", high))
    default = request_type.default(name)
    return gr.Slider(minimum=low, maximum=high, step=step, value=options.pop("value", default), **options)


def gradio_progress(progress: gr.Progress, desc: str, where: str = "") -> Callable[[int, int], None]:
    """Steps on the progress bar, as "`where``desc`" in the visitor's language."""
    translated = where + say(desc)

    def report(step: int, total: int) -> None:
        progress((step, total), desc=translated, unit="steps")

    return report


def describe_parameters(parameters: dict | None) -> str:
    if not parameters:
        return ""
    return GenerationParameters.from_dict(parameters).to_text()
