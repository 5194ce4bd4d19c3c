"""Midjourney's parameters typed in the prompt move into the controls they set, before the run."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    GENERATE_TIMEOUT_MS,
    TXT2IMG_GALLERY,
    TXT2IMG_SELECTED,
    open_advanced,
    saved_pngs,
    set_slider,
    tab_panel,
    toast,
    wait_for_images,
    wait_for_saved,
)

pytestmark = pytest.mark.e2e

GALLERY, SELECTED = TXT2IMG_GALLERY, TXT2IMG_SELECTED


def test_typed_parameters_fill_the_controls_and_a_tiled_result_shows_its_3x3_check(page: Page) -> None:
    panel = tab_panel(page, "#txt2img-generate")
    open_advanced(panel)
    set_slider(panel, "Steps", 2)
    prompt = page.locator("#txt2img-prompt textarea")
    prompt.fill("a stone wall, moss --ar 2:1 --no trees --seed 5 --tile --chaos 20 --weird 2")
    page.locator("#txt2img-generate").click()

    # Any ratio, not the nearest preset.
    expect(page.locator("#txt2img-aspect-ratio input")).to_have_value("2:1")
    expect(page.locator("#txt2img-negative textarea")).to_have_value("trees")
    expect(page.locator("#txt2img-seed input")).to_have_value("5")
    expect(page.locator("#txt2img-tile input")).to_be_checked()
    expect(panel.get_by_label("number input for Variety (chaos)", exact=True)).to_have_value("20")
    expect(prompt).to_have_value("a stone wall, moss --weird 2")  # left for the run to name
    expect(page.locator("#txt2img-status")).to_contain_text(
        "--weird 2 is not something this studio does", timeout=GENERATE_TIMEOUT_MS
    )

    wait_for_images(page, GALLERY, 1)
    made = re.compile(r"Seed: 5,.*Size: 96x48.*Aspect ratio: \"2:1\".*Tile: True")
    expect(page.locator(SELECTED)).to_have_value(made)
    expect(page.locator(SELECTED)).to_have_value(re.compile(r"Ignored parameters: \"--weird 2 is not"))
    tiled = page.locator("#txt2img-tiled img")
    expect(tiled).to_be_visible()
    size = tiled.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
    assert size == [96 * 3, 48 * 3]

    # A result made without --tile hides the check again.
    prompt.fill("a stone wall")
    page.locator("#txt2img-tile input").uncheck()
    page.locator("#txt2img-generate").click()
    expect(page.locator(SELECTED)).not_to_have_value(re.compile("Tile"), timeout=GENERATE_TIMEOUT_MS)
    expect(page.locator("#txt2img-tiled img")).to_have_count(0)


def test_a_runs_notes_stay_on_its_own_tab_not_in_a_toast_over_another(page: Page, running_app) -> None:
    page.locator("#txt2img-prompt textarea").fill("a fox --weird 2")
    before = saved_pngs(running_app.outputs)
    page.locator("#txt2img-generate").click()
    page.get_by_role("tab", name="Style Transfer", exact=True).click()  # while the run waits or runs
    wait_for_saved(page, running_app.outputs, before)
    page.get_by_role("tab", name="Text to Image", exact=True).click()
    expect(page.locator("#txt2img-status")).to_contain_text(
        "--weird 2 is not something this studio does", timeout=GENERATE_TIMEOUT_MS
    )
    expect(toast(page, "--weird 2")).to_have_count(0)


def test_a_lora_tag_moves_to_the_lora_box_and_an_unknown_one_is_refused_with_the_grid_kept(
    page: Page,
) -> None:
    open_advanced(tab_panel(page, "#txt2img-generate"))
    page.locator("#txt2img-prompt textarea").fill("a fox <lora:paper-cut:0.6>")
    page.locator("#txt2img-generate").click()
    expect(page.locator("#txt2img-loras textarea")).to_have_value("paper-cut:0.6")
    expect(page.locator("#txt2img-prompt textarea")).to_have_value("a fox")
    expect(page.locator("#txt2img-status")).to_contain_text(
        "Unknown LoRA 'paper-cut'", timeout=GENERATE_TIMEOUT_MS
    )


def test_a_value_that_does_not_read_is_refused_before_anything_runs(page: Page) -> None:
    page.locator("#txt2img-prompt textarea").fill("a fox --ar wide")
    page.locator("#txt2img-generate").click()
    expect(toast(page, "--ar 'wide': give it as width:height, e.g. --ar 16:9")).to_be_visible()
    expect(page.locator("#txt2img-prompt textarea")).to_have_value("a fox --ar wide")
    expect(page.locator(GALLERY)).to_have_count(0)
