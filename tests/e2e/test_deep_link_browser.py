"""The link button: a copied link reopens the studio with the same grid and its settings."""

import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    TXT2IMG_GALLERY,
    image_sources,
    open_advanced,
    set_slider,
    tab_panel,
    wait_for_images,
    wait_for_results,
)

pytestmark = pytest.mark.e2e

GALLERY = TXT2IMG_GALLERY


def test_a_copied_link_reopens_the_same_grid_and_settings(page: Page, running_app) -> None:
    panel = tab_panel(page, "#txt2img-generate")
    page.locator("#txt2img-prompt textarea").fill("a harbour at night")
    set_slider(panel, "Images", 2)
    open_advanced(panel)
    page.locator("#txt2img-seed input").fill("321")
    page.locator("#txt2img-generate").click()
    wait_for_images(page, GALLERY, 2)
    shown = image_sources(page, GALLERY)
    link = copied_link(page)
    again = page.context.new_page()
    again.goto(link)
    wait_for_images(again, GALLERY, 2)
    expect(again.locator("#txt2img-prompt textarea")).to_have_value("a harbour at night")
    open_advanced(tab_panel(again, "#txt2img-generate"))
    expect(again.locator("#txt2img-seed input")).to_have_value("321")
    names = [source.rsplit("/", 1)[-1] for source in image_sources(again, GALLERY)]
    assert names == [source.rsplit("/", 1)[-1] for source in shown]


def copied_link(page: Page) -> str:
    """The link the button copies, once the server has stored the page's state."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy a link to this page").click()
    expect(page.get_by_role("button", name="Link copied")).to_be_visible()
    link = ""
    for _ in range(100):
        link = page.evaluate("navigator.clipboard.readText()")
        if link:
            break
        page.wait_for_timeout(100)
    assert re.search(r"[?&]deep_link=", link), link
    return link


def test_a_link_to_a_blend_reopens_its_grid_and_settings(page: Page, tmp_path) -> None:
    page.get_by_role("tab", name="Blend", exact=True).click()
    panel = tab_panel(page, "#blend-generate")
    for number in (1, 2):
        picture = tmp_path / f"picture-{number}.png"
        noise = np.random.default_rng(number).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(picture)
        page.locator(f"#blend-image-{number} input[type=file]").set_input_files(str(picture))
        expect(page.locator(f"#blend-image-{number} img")).to_be_visible()
    page.locator("#blend-prompt textarea").fill("a meadow")
    open_advanced(panel)
    page.locator("#blend-seed input").fill("77")
    page.locator("#blend-generate").click()
    wait_for_results(page, "#blend-gallery img", "blend")
    link = copied_link(page)

    again = page.context.new_page()
    again.goto(link)
    again.get_by_role("tab", name="Blend", exact=True).click()
    wait_for_results(again, "#blend-gallery img", "blend")
    expect(again.locator("#blend-prompt textarea")).to_have_value("a meadow")
    open_advanced(tab_panel(again, "#blend-generate"))
    expect(again.locator("#blend-seed input")).to_have_value("77")
