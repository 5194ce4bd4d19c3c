"""Who may call the client APIs. With --auth, AUTOMATIC1111's clients send Basic credentials (a studio
user's); OpenAI's send a Bearer key (--api-key, --api-keys-file). Without either setting the APIs are as
open as the page: clients that send an empty `Basic ` header (Open WebUI and SillyTavern always do) get in.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from pathlib import Path

from fastapi import Request as HttpRequest

from studio.client_apis.runs import ClientError
from studio.core.settings import Settings

log = logging.getLogger(__name__)

KEY_USER = "api-key"  # whom results made with a Bearer key belong to in the history


def basic_user(http: HttpRequest, settings: Settings) -> str | None:
    """The signed-in user of a Basic `Authorization` header (None when the studio has no --auth); a
    missing or wrong one is refused with 401, before anything runs."""
    if not settings.auth:
        return None
    scheme, _, encoded = http.headers.get("authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        user, password = "", ""
    if scheme.lower() == "basic" and any(
        hmac.compare_digest(user, known) & hmac.compare_digest(password, secret)
        for known, secret in settings.auth
    ):
        return user
    raise ClientError(
        401, "This studio needs a login: send the user and password of one of its --auth users."
    )


def bearer_user(http: HttpRequest, settings: Settings) -> str | None:
    """Whom a Bearer key belongs to (None when no key is asked for: no --auth and no keys set); a missing
    or wrong key is refused with 401. A studio with --auth and no keys takes no key at all."""
    keys = api_keys(settings)
    if not keys and not settings.auth:
        return None
    scheme, _, given = http.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and any(hmac.compare_digest(given.strip(), key) for key in keys):
        return KEY_USER
    if not keys:
        raise ClientError(401, "This studio takes no API keys yet: start it with --api-key KEY.")
    raise ClientError(
        401, "Incorrect API key: send one of this studio's keys as 'Authorization: Bearer KEY'."
    )


def api_keys(settings: Settings) -> list[str]:
    """--api-key's keys and the keys file's lines (read now, so a key added there works at once)."""
    keys = list(settings.api_keys)
    if settings.api_keys_file is not None:
        try:
            lines = Path(settings.api_keys_file).read_text().splitlines()
        except OSError as error:  # refused rather than opened up
            log.error("The API keys file could not be read (%s): no key is taken from it.", error)
            lines = []
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return keys
