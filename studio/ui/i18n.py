"""The interface in English and Simplified Chinese.

English is written in the code, and each English string is its own key: `locales/zh-CN.json` maps it to
Chinese. Two routes reach the page:
- Static text (labels, hints, buttons, tab names, Markdown) is wrapped in `tr(...)` and translated in the
  browser by Gradio's i18n, in the language the browser prefers or the one picked under Settings.
- Messages made while a request runs (errors, warnings, progress, status lines) are translated here, by
  `say(...)`, into the language the page shows: the page keeps it in a cookie (HEAD below, which follows
  a switch under Settings); without one, the browser's Accept-Language. Messages with values are matched
  against the catalogue's templates, whose `{...}` parts stand for the values.

The API's answers stay in English: a client sends no page language.
"""

from __future__ import annotations

import functools
import json
import re
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.context import LocalContext
from gradio.i18n import I18nData

LOCALES_DIR = Path(__file__).parent / "locales"
CHINESE = "zh-CN"
COOKIE = "studio-locale"


@functools.cache
def catalogue(locale: str = CHINESE) -> dict[str, str]:
    return json.loads((LOCALES_DIR / f"{locale}.json").read_text(encoding="utf-8"))


@functools.cache
def translations() -> gr.I18n:
    return gr.I18n(**{CHINESE: catalogue(CHINESE)})


def tr(text: str) -> I18nData:
    """Static text the browser shows in its language (its English is the key)."""
    return translations()(text)


def plain(text: Any) -> str:
    """The English of `text`, a string or a `tr(...)`."""
    return text.key if isinstance(text, I18nData) else str(text)


# The page writes the language it shows into a cookie the server reads with each request; Gradio sets
# <html lang> to that language, on loading and when Settings switches it.
HEAD = f"""<script>
(() => {{
  const keep = () => {{
    const lang = document.documentElement.lang;
    // In a Space's iframe the page is a third party: a partitioned cookie is still sent there.
    const scope = location.protocol === "https:" ? "; SameSite=None; Secure; Partitioned" : "; SameSite=Lax";
    if (lang) document.cookie = "{COOKIE}=" + encodeURIComponent(lang) + "; path=/; max-age=31536000" + scope;
  }};
  new MutationObserver(keep).observe(
    document.documentElement, {{attributes: true, attributeFilter: ["lang"]}}
  );
  keep();
}})();
</script>"""


def locale_of(request: gr.Request | None) -> str | None:
    """The language the asking page shows: its cookie, else the browser's first Accept-Language."""
    headers = getattr(request, "headers", None) or {}
    try:
        cookie = SimpleCookie(headers.get("cookie", ""))
    except CookieError:
        cookie = SimpleCookie()
    if COOKIE in cookie:
        return cookie[COOKIE].value
    accepted = headers.get("accept-language", "")
    return accepted.split(",")[0].split(";")[0].strip() or None


def is_chinese(locale: str | None) -> bool:
    """Simplified Chinese: zh, zh-CN, zh-SG, zh-Hans…; not zh-TW or zh-HK (Traditional)."""
    parts = (locale or "").replace("_", "-").lower().split("-")
    return parts[0] == "zh" and not {"tw", "hk", "mo", "hant"} & set(parts[1:])


def say(message: str, request: gr.Request | None = None) -> str:
    """`message` in the language of the page that made the current request (English for the API)."""
    if request is None:
        request = LocalContext.request.get(None)
    return translate(message, CHINESE) if is_chinese(locale_of(request)) else message


def say_phrases(phrases: list[str], request: gr.Request | None = None, *, opens: bool = True) -> str:
    """Notes written as lowercase phrases ("its seed … is used"), translated and made one sentence
    (`opens`: it starts a sentence, so in English its first letter is a capital)."""
    said = [say(phrase, request) for phrase in phrases]
    if all(a == b for a, b in zip(said, phrases, strict=True)):  # English
        sentence = "; ".join(phrases)
        return (sentence[:1].upper() if opens else sentence[:1]) + sentence[1:] + "."
    return "；".join(said) + "。"


def translate(message: str, locale: str = CHINESE) -> str:
    """`message` in `locale`: its translation, or a template's filled with the message's values; a message
    of several problems ("A; B.") part by part. Untranslated messages stay in English."""
    found = _lookup(message, locale)
    if found is None and "; " in message:
        parts = [translate(part + ".", locale) for part in message.rstrip(".").split("; ")]
        if any(not part.isascii() for part in parts):
            found = "；".join(part.rstrip("。.") for part in parts) + "。"
    return message if found is None else found


def _lookup(message: str, locale: str) -> str | None:
    """The entry for `message`, or for it without its full stop (a phrase the code ended with one)."""
    words = catalogue(locale)
    candidates = [(message, "")]
    if message.endswith("."):
        candidates.append((message[:-1], "。"))
    for candidate, full_stop in candidates:
        if candidate in words:
            return _ended(words[candidate], full_stop)
    for pattern, names, translated in _templates(locale):  # the most specific first
        for candidate, full_stop in candidates:
            match = pattern.fullmatch(candidate)
            if match:
                values = dict(zip(names, match.groups(), strict=True))
                # A value that is itself a phrase ("style image") is translated too.
                filled = re.sub(r"\{([^{}]+)\}", lambda m, v=values: words.get(v[m[1]], v[m[1]]), translated)
                return _ended(filled, full_stop)
    return None


def _ended(text: str, full_stop: str) -> str:
    return text.rstrip("。.") + full_stop if full_stop else text


@functools.cache
def _templates(locale: str) -> list[tuple[re.Pattern, list[str], str]]:
    """The catalogue's entries with `{value}` parts, the most specific (most fixed text) first."""
    templates = []
    for english, translated in catalogue(locale).items():
        pieces = re.split(r"\{([^{}]+)\}", english)
        if len(pieces) == 1:
            continue
        fixed, names = pieces[0::2], pieces[1::2]
        # A value never spans "; ", which joins the problems of one message.
        pattern = "((?:(?!; ).)+?)".join(re.escape(piece) for piece in fixed)
        templates.append((re.compile(pattern, re.DOTALL), names, translated, sum(map(len, fixed))))
    templates.sort(key=lambda entry: -entry[3])
    return [entry[:3] for entry in templates]
