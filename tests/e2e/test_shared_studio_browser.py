"""A studio others can reach (`--share`, `--auth`, a host other than loopback) shows its visitors names, never
the server's paths: not where results are saved, not the `--model` folder, before or after a run."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import RunningApp, launch_app, studio_settings
from tests.e2e.helpers import TXT2IMG_GALLERY, TXT2IMG_SELECTED, open_studio, wait_for_images

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared_app(tiny_sd, tiny_presets_dir, tmp_path_factory) -> Iterator[RunningApp]:
    outputs = tmp_path_factory.mktemp("outputs")
    running = launch_app(studio_settings(tiny_sd, outputs, host="0.0.0.0", presets_dir=tiny_presets_dir))
    yield running
    running.demo.close()


@pytest.fixture
def visitor(browser: Browser, shared_app: RunningApp) -> Iterator[Page]:
    page = open_studio(browser, shared_app.url)
    yield page
    page.context.close()


def everything_shown(page: Page) -> str:
    """The page's text and the values of its boxes (which innerText leaves out)."""
    return page.evaluate(
        """() => [document.body.innerText,
                  ...[...document.querySelectorAll("input, textarea")].map((box) => box.value)].join("\\n")"""
    )


def test_a_visitor_sees_the_models_name_and_no_server_path(visitor: Page, shared_app, tiny_sd) -> None:
    expect(visitor.locator("#model-status")).to_contain_text("tiny-sd")
    expect(visitor.locator("#txt2img-model input")).to_have_value("tiny-sd")
    expect(visitor.locator("#studio-header")).to_contain_text("Results are saved on the server")
    visitor.locator("#txt2img-prompt textarea").fill("a lantern")
    visitor.locator("#txt2img-generate").click()
    wait_for_images(visitor, TXT2IMG_GALLERY, 1)
    expect(visitor.locator(TXT2IMG_SELECTED)).to_have_value(re.compile(r"Model: tiny-sd\b"))
    shown = everything_shown(visitor)
    for server_path in (str(tiny_sd), str(shared_app.outputs), str(tiny_sd.parent)):
        assert server_path not in shown, server_path
