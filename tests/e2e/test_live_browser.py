"""The Live tab in a headless Chromium: the picture follows typing with no click, stale edits are dropped,
Keep saves the frame and Enhance renders it in Text to Image."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conditions import FirstCallHeld
from tests.e2e.helpers import (
    GENERATE_TIMEOUT_MS,
    TXT2IMG_GALLERY,
    TXT2IMG_SELECTED,
    saved_pngs,
    wait_for_images,
)

pytestmark = pytest.mark.e2e

PROMPT = "#live-prompt textarea"
FRAME = "#live-frame img"
STATUS = "#live-status"


def open_live(page: Page) -> None:
    page.get_by_role("tab", name="Live", exact=True).click()
    expect(page.locator(PROMPT)).to_be_visible()


def test_the_picture_follows_typing_with_no_click_and_keep_and_enhance_take_it_on(page: Page, running_app):
    open_live(page)
    page.locator(PROMPT).press_sequentially("a red fox", delay=40)
    frame = page.locator(FRAME)
    expect(frame).to_have_attribute("src", re.compile(r".+"), timeout=GENERATE_TIMEOUT_MS)
    expect(page.locator(STATUS)).to_contain_text("64×64", timeout=GENERATE_TIMEOUT_MS)
    first = frame.get_attribute("src")

    page.locator(PROMPT).press_sequentially(" at dusk", delay=40)
    expect(frame).not_to_have_attribute("src", first, timeout=GENERATE_TIMEOUT_MS)
    page.get_by_text("Frame parameters").click()
    expect(page.locator("#live-parameters")).to_contain_text("a red fox at dusk", timeout=GENERATE_TIMEOUT_MS)

    before = saved_pngs(running_app.outputs)
    page.locator("#live-keep").click()
    expect(page.locator(STATUS)).to_contain_text(re.compile(r"Kept in the history as \d+-live-\d+\.png"))
    assert len(saved_pngs(running_app.outputs) - before) == 1

    page.locator("#live-enhance").click()
    expect(page.locator("#txt2img-prompt textarea")).to_have_value("a red fox at dusk")
    wait_for_images(page, TXT2IMG_GALLERY, 1)
    page.locator(TXT2IMG_GALLERY).first.click()
    expect(page.locator(TXT2IMG_SELECTED)).to_have_value(re.compile(r"Steps: 25, .*Decoder: full"))


def test_edits_made_while_a_frame_is_drawn_are_dropped_but_the_newest(page: Page, running_app):
    """The first frame is held until the rest is typed: of the four edits made meanwhile, only the newest
    is sent and drawn; those it made stale never reach the model (their prompts are never encoded)."""
    live = running_app.demo.studio.runner.tasks["live"]
    with FirstCallHeld(live, "frame") as first_frame:
        open_live(page)
        page.locator(PROMPT).press_sequentially("a")
        assert first_frame.inside.wait(30)
        page.locator(PROMPT).press_sequentially(" fox")
        expect(page.locator(PROMPT)).to_have_value("a fox")
        first_frame.release()
        page.get_by_text("Frame parameters").click()
        expect(page.locator("#live-parameters")).to_contain_text('"a fox"', timeout=GENERATE_TIMEOUT_MS)
    assert "a fox" in live.prompts.prompts()
    assert not {"a f", "a fo"} & live.prompts.prompts(), "no stale edit reached the model"
