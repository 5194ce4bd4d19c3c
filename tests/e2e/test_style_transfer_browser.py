"""The Style Transfer tab in a headless Chromium: instant styles picked from previews, and the diffusion
mode's structure preview and run."""

from __future__ import annotations

import re

import numpy as np
import pytest
import skimage.data
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    GENERATE_TIMEOUT_MS,
    open_advanced,
    saved_pngs,
    set_slider,
    tab_panel,
    wait_for_images,
    wait_for_saved,
)

pytestmark = pytest.mark.e2e

SELECTED = "#style-selected textarea"


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("inputs") / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).resize((160, 120)).save(path)
    return str(path)


def open_style_tab(page: Page, photo: str) -> None:
    page.get_by_role("tab", name="Style Transfer", exact=True).click()
    page.locator("#style-image input[type=file]").set_input_files(photo)
    expect(page.locator("#style-image img")).to_have_count(1)


def test_instant_style_mixes_styles_picked_from_previews(page: Page, photo: str) -> None:
    open_style_tab(page, photo)
    previews = page.locator("#style-previews img")
    expect(previews).to_have_count(26)
    previews.nth(19).click()  # adds a second style to the one chosen by default
    chosen = page.locator("#style-neural-styles .token")
    expect(chosen).to_have_count(2)
    expect(page.get_by_label("number input for Weight of Night Swirl", exact=True)).to_be_visible()

    page.locator("#style-generate").click()
    wait_for_images(page, "#style-gallery img", 1)
    expect(page.locator(SELECTED)).to_have_value(
        re.compile(r"Mode: instant.*Night Swirl", re.S), timeout=GENERATE_TIMEOUT_MS
    )
    size = page.evaluate("() => document.querySelector('#style-gallery img').naturalWidth")
    assert size == 160, "the result keeps the photo's size"


def test_diffusion_mode_previews_the_structure_and_runs(page: Page, photo: str) -> None:
    open_style_tab(page, photo)
    page.get_by_label("Diffusion (keeps structure, any style)").check()
    wait_for_images(page, "#style-structure-map img", 1)
    edges = page.evaluate(
        """() => {
            const img = document.querySelector('#style-structure-map img');
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0);
            return [...context.getImageData(0, 0, canvas.width, canvas.height).data];
        }"""
    )
    values = np.array(edges, dtype=np.uint8)
    assert set(np.unique(values[::4])) <= {0, 255} and (values[::4] == 255).any(), (
        "a black-and-white edge map"
    )

    page.locator("#style-prompt textarea").fill("woodcut print")
    panel = tab_panel(page, "#style-generate")
    open_advanced(panel)
    set_slider(panel, "Steps", 2)
    page.locator("#style-generate").click()
    wait_for_images(page, "#style-gallery img", 1)
    expect(page.locator(SELECTED)).to_have_value(
        re.compile(r"^woodcut print\n.*Structure: canny", re.S), timeout=GENERATE_TIMEOUT_MS
    )


def test_send_a_result_to_style_transfer(page: Page, running_app) -> None:
    panel = tab_panel(page, "#txt2img-generate")
    page.locator("#txt2img-prompt textarea").fill("a lighthouse")
    open_advanced(panel)
    set_slider(panel, "Steps", 2)
    before = saved_pngs(running_app.outputs)
    page.locator("#txt2img-generate").click()
    wait_for_images(page, "#txt2img-gallery img", 1)
    wait_for_saved(page, running_app.outputs, before)  # a live preview cannot be sent
    # The saved image replaces the preview in the grid.
    expect(page.locator("#txt2img-gallery")).not_to_contain_text("step", timeout=GENERATE_TIMEOUT_MS)
    page.locator("#txt2img-send-style").click()
    expect(page.get_by_role("tab", name="Style Transfer", exact=True)).to_have_attribute(
        "aria-selected",
        "true",
        timeout=30_000,  # a quick event, but it queues behind a busy machine
    )
    expect(page.locator("#style-image img")).to_have_count(1)
    page.get_by_label("Diffusion (keeps structure, any style)").check()  # the prompt is a diffusion control
    expect(page.locator("#style-prompt textarea")).to_have_value("a lighthouse")
