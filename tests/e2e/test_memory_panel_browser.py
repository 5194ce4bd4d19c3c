"""The Memory accordion in a headless Chromium: what is loaded, and Free memory."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import open_advanced, set_slider, tab_panel, wait_for_images

pytestmark = pytest.mark.e2e


def test_memory_panel_lists_the_loaded_model_and_frees_it(page: Page) -> None:
    panel = tab_panel(page, "#txt2img-generate")
    page.locator("#txt2img-prompt textarea").fill("a kite")
    open_advanced(panel)
    set_slider(panel, "Steps", 2)
    page.locator("#txt2img-generate").click()
    wait_for_images(page, "#txt2img-gallery img", 1)

    page.locator("#memory-panel button.label-wrap").click()
    expect(page.locator("#memory-summary")).to_contain_text(re.compile(r"RAM: \d+ MiB of [\d.]+ GiB"))
    expect(page.locator("#memory-models")).to_contain_text("tiny-sd")

    page.locator("#memory-free").click()
    expect(page.locator("#memory-summary")).to_contain_text("RAM: 0 MiB")
    expect(page.locator("#memory-models")).not_to_contain_text("tiny-sd")
