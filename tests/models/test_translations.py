"""Every string the interface shows has a Simplified Chinese translation.

Static text is found by walking the built page; messages (errors, warnings, notes) by reading the code for
the strings handed to the exceptions and toasts that carry them. A new label or message without an entry
in studio/ui/locales/zh-CN.json fails here, naming it.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import gradio as gr
import pytest
from gradio.i18n import I18nData

from studio.core.neural_style import load_neural_styles
from studio.core.settings import DEFAULT_PRESETS_DIR
from studio.ui.i18n import catalogue, is_chinese, locale_of, say, translate
from tests.conftest import studio_settings

ROOT = Path(__file__).resolve().parents[2]
TEXT_PROPERTIES = ("label", "info", "placeholder", "copied_value")
# Filled by the server in the visitor's language (their English start is only a fallback).
FILLED = {"studio-header", "model-status"}


@pytest.fixture(scope="module")
def page(tiny_sd, tiny_presets_dir, tmp_path_factory) -> gr.Blocks:
    import app

    settings = studio_settings(tiny_sd, tmp_path_factory.mktemp("outputs"), presets_dir=tiny_presets_dir)
    return app.create_app(settings)


def preset_names(page: gr.Blocks) -> set[str]:
    """Names of presets (models, styles, samplers, upscalers...), which stay as they are."""
    presets = page.studio.presets
    names = {*presets.models, *presets.styles, *presets.samplers, *presets.variations, *presets.captioners}
    names |= {model.label for model in presets.models.values()} | {presets.default_model}
    names |= {style.name for style in load_neural_styles(DEFAULT_PRESETS_DIR / "neural_styles.json")}
    return names


def shown_texts(page: gr.Blocks) -> list[tuple[str, object]]:
    """(where, text) for every static text of the page: properties, button and Markdown values, choices."""
    texts = []
    for block in page.blocks.values():
        if getattr(block, "visible", True) is False:  # hidden: an API route's trigger
            continue
        where = f"{type(block).__name__} {getattr(block, 'elem_id', None) or ''}".strip()
        for name in TEXT_PROPERTIES:
            value = getattr(block, name, None)
            if value:
                texts.append((f"{where}.{name}", value))
        shows_value = isinstance(block, gr.Button | gr.Markdown | gr.HTML) and block.elem_id not in FILLED
        if shows_value and (isinstance(block.value, I18nData) or str(block.value or "").strip()):
            texts.append((f"{where}.value", block.value))
        for choice in getattr(block, "choices", None) or []:
            display = choice[0] if isinstance(choice, tuple | list) else choice
            if isinstance(display, str):
                texts.append((f"{where}.choices", display))
    return texts


def json_unescape(key: str) -> str:
    return json.loads(f'"{key}"')


def test_every_text_on_the_page_is_translated(page):
    words, presets = catalogue(), preset_names(page)
    missing = []
    for where, text in shown_texts(page):
        if isinstance(text, I18nData):
            keys = [text.key]
        else:  # its string form, maybe escaped inside a script's string (the deep link's "copied" label)
            keys = re.findall(r'__i18n__\{[^{}]*"key": "((?:[^"\\]|\\.)*)"', text.replace('\\"', '"'))
        if keys:  # a component keeps some as I18nData, some as their string form
            missing += [
                f"{where}: {key!r} has no translation" for key in map(json_unescape, keys) if key not in words
            ]
        elif where.endswith(".choices"):
            # Gradio translates a choice by its text; preset names and numbers stay as they are.
            if text not in words and text not in presets and not re.fullmatch(r"[\d.,x×% ]+", text):
                missing.append(f"{where}: {text!r} has no translation")
        else:
            missing.append(f"{where}: {text!r} is not wrapped in tr(...)")
    assert not missing, "\n".join(sorted(set(missing)))


# Calls whose first argument is a message someone reads (errors, toasts, progress), and the notes runs make.
MESSAGE_CARRIERS = {
    *("Error", "Warning", "Info", "say", "say_phrases", "report_preparation"),
    *("StudioError", "InvalidRequest", "ModelUnavailable", "PresetError", "ResultNotSaved", "RunCancelled"),
    "OutOfMemory",
}


def template(node: ast.AST) -> str | None:
    """A message as written: a string, or an f-string with each value as `{expression}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "{" + ast.unparse(part.value) + "}"
            for part in node.values
        )
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "scrub_paths" and node.args:
        return template(node.args[0])  # the message with server folders left out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = template(node.left), template(node.right)
        return None if left is None or right is None else left + right
    return None


def written_messages() -> dict[str, str]:
    """Every message handed to an exception or a toast in the studio's code, by where it is written."""
    messages = {}
    for path in [*ROOT.glob("studio/**/*.py"), *ROOT.glob("pipelines/*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            is_note = name == "append" and getattr(node.func.value, "id", None) == "notes"
            text = template(node.args[0]) if name in MESSAGE_CARRIERS or is_note else None
            if text and re.search(r"[A-Za-z]{2}", text):
                messages[text] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return messages


def test_every_message_is_translated():
    words = catalogue()
    missing = [f"{where}: {text!r}" for text, where in written_messages().items() if text not in words]
    assert not missing, "no translation for:\n" + "\n".join(sorted(missing))


def test_translations_keep_every_value_of_their_template():
    """A template's translation uses exactly its `{...}` values, so none is lost or invented."""
    wrong = []
    for english, chinese in catalogue().items():
        values = sorted(re.findall(r"\{([^{}]+)\}", english))
        if values != sorted(re.findall(r"\{([^{}]+)\}", chinese)):
            wrong.append(f"{english!r} -> {chinese!r}")
    assert not wrong, "\n".join(wrong)


class FakeRequest:
    def __init__(self, **headers: str) -> None:
        self.headers = headers


@pytest.mark.parametrize(
    ("headers", "chinese"),
    [
        ({"accept-language": "zh-CN,zh;q=0.9,en;q=0.8"}, True),
        ({"accept-language": "en-US,en;q=0.9"}, False),
        ({"accept-language": "zh-TW"}, False),  # Traditional: not this catalogue
        ({"cookie": "other=1; studio-locale=zh-CN", "accept-language": "en"}, True),  # Settings wins
        ({"cookie": "studio-locale=en", "accept-language": "zh-CN"}, False),
        ({"cookie": 'broken="', "accept-language": "zh"}, True),
        ({}, False),  # an API client
    ],
)
def test_the_page_language_comes_from_its_cookie_else_the_browser(headers, chinese):
    assert is_chinese(locale_of(FakeRequest(**headers))) is chinese
    assert (say("Steps", FakeRequest(**headers)) != "Steps") is chinese


def test_messages_with_values_are_translated_through_their_templates():
    words = catalogue()
    message = "Seed must be between -1 and 4294967295 (got 99999999999)."
    chinese = translate(message.rstrip(".")).rstrip("。")
    assert "99999999999" in chinese and "4294967295" in chinese and words["Seed"] in chinese
    assert "must be" not in chinese
    # several problems in one message, part by part
    both = translate(
        "Seed must be between -1 and 4294967295 (got 7); Steps must be between 1 and 150 (got 0)."
    )
    assert both.count("；") == 1 and words["Steps"] in both and "(got" not in both
    # a message no template matches stays in English rather than half translated
    assert translate("Something nobody wrote down.") == "Something nobody wrote down."


def test_english_pages_and_api_clients_get_the_messages_as_written():
    assert say("Stopped after 2 of 4 images.", FakeRequest()) == "Stopped after 2 of 4 images."
    chinese = say("Stopped after 2 of 4 images.", FakeRequest(cookie="studio-locale=zh-CN"))
    assert "2" in chinese and "4" in chinese and "Stopped" not in chinese


def test_the_model_not_on_this_machine_message_is_translated_with_its_values():
    """The header's model check says it in the page's language: the offline message is built at run time,
    from the model and the way to supply it."""
    from studio.core.models import MODEL_HINT, ModelSource, _offline_message

    source = ModelSource(name="sd-turbo", location="stabilityai/sd-turbo", kind="hub")
    message = _offline_message(source, MODEL_HINT)
    chinese = translate(message)
    assert chinese != message and "不在本机上" in chinese
    assert "hf download stabilityai/sd-turbo" in chinese and "--model /path/to/model" in chinese
    assert "或用 --model" in chinese, "the way to supply it is translated too"
