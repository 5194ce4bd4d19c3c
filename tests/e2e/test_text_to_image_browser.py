"""The Text to Image tab driven in a headless Chromium against the whole studio serving a tiny model.

Needs Playwright for Python and a system Chromium on PATH as `chromium`. The browser Playwright downloads
itself is never used, so `playwright install` is not needed (the test machines have no network).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    GENERATE_TIMEOUT_MS,
    open_advanced,
    saved_pngs,
    set_slider,
    tab_panel,
    wait_for_images,
)

pytestmark = pytest.mark.e2e

PROMPT = "#txt2img-prompt textarea"
GENERATE = "#txt2img-generate"
GALLERY_IMAGES = "#txt2img-gallery img"
SELECTED = "#txt2img-selected textarea"


def image_sizes(page: Page) -> list[dict]:
    return page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)].map((img) => ({
            src: img.src, width: img.naturalWidth, height: img.naturalHeight, complete: img.complete,
        }))""",
        GALLERY_IMAGES,
    )


def test_generate_two_images_shows_them_saves_them_and_describes_the_first(
    page: Page, running_app, tmp_path: Path
) -> None:
    expect(page.get_by_role("tab", name="Text to Image")).to_be_visible()
    before = saved_pngs(running_app.outputs)

    page.locator(PROMPT).fill("a lighthouse on a cliff at dawn")
    set_slider(tab_panel(page, GENERATE), "Images", 2)
    open_advanced(tab_panel(page, GENERATE))
    set_slider(tab_panel(page, GENERATE), "Steps", 2)
    page.locator(GENERATE).click()

    wait_for_images(page, GALLERY_IMAGES, 2)
    sizes = image_sizes(page)
    assert len(sizes) == 2
    for image in sizes:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["src"].startswith(running_app.url.rstrip("/")), image

    selected = page.locator(SELECTED)
    expect(selected).to_have_value(re.compile(r"Seed: \d+"), timeout=GENERATE_TIMEOUT_MS)
    text = selected.input_value()
    assert text.startswith("a lighthouse on a cliff at dawn"), text
    assert "Steps: 2" in text, text

    new_files = saved_pngs(running_app.outputs) - before
    assert len(new_files) == 2, sorted(new_files)
    assert all(path.stat().st_size > 0 for path in new_files)
    # The first image's caption and its file name carry the seed shown for it.
    seed = re.search(r"Seed: (\d+)", text).group(1)
    assert any(path.name.endswith(f"-{seed}.png") for path in new_files), (seed, sorted(new_files))

    screenshot = tmp_path / "txt2img.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0


def test_empty_prompt_shows_an_error_and_the_page_keeps_working(page: Page, running_app) -> None:
    before = saved_pngs(running_app.outputs)

    page.locator(GENERATE).click()
    toast = page.get_by_test_id("toast-text").filter(has_text="Type a prompt first")
    expect(toast).to_be_visible(timeout=GENERATE_TIMEOUT_MS)
    expect(page.locator(GALLERY_IMAGES)).to_have_count(0)
    assert saved_pngs(running_app.outputs) == before

    page.locator(PROMPT).fill("a red bicycle")
    open_advanced(tab_panel(page, GENERATE))
    set_slider(tab_panel(page, GENERATE), "Steps", 2)
    page.locator(GENERATE).click()

    wait_for_images(page, GALLERY_IMAGES, 1)
    expect(page.locator(SELECTED)).to_have_value(re.compile(r"^a red bicycle\n.*Seed: \d+"))
    assert "Steps: 2" in page.locator(SELECTED).input_value()
    assert len(saved_pngs(running_app.outputs) - before) == 1
