"""Grid actions in a headless Chromium: Vary on a grid image, Send to Image to Image (and Edit there), Send
to Upscale."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    GENERATE_TIMEOUT_MS,
    image_sources,
    open_advanced,
    set_slider,
    tab_panel,
    wait_for_images,
)

pytestmark = pytest.mark.e2e

TXT2IMG_GALLERY = "#txt2img-gallery img"
TXT2IMG_SELECTED = "#txt2img-selected textarea"


def generate_grid(page: Page, prompt: str, images: int) -> list[str]:
    panel = tab_panel(page, "#txt2img-generate")
    page.locator("#txt2img-prompt textarea").fill(prompt)
    set_slider(panel, "Images", images)
    open_advanced(panel)
    set_slider(panel, "Steps", 2)
    page.locator("#txt2img-generate").click()
    wait_for_images(page, TXT2IMG_GALLERY, images)
    expect(page.locator(TXT2IMG_SELECTED)).to_have_value(
        re.compile(r"Seed: \d+"), timeout=GENERATE_TIMEOUT_MS
    )
    return image_sources(page, TXT2IMG_GALLERY)


def test_vary_subtle_on_a_grid_image_makes_a_new_grid(page: Page) -> None:
    first_grid = generate_grid(page, "a paper boat on a pond", images=2)
    page.locator(TXT2IMG_GALLERY).nth(1).click()  # select the second image
    expect(page.locator(TXT2IMG_SELECTED)).to_have_value(re.compile(r"Seed: \d+"))
    page.locator("#txt2img-vary-subtle").click()

    # Selecting put the gallery in preview mode (the same image shown twice), so count distinct images.
    page.wait_for_function(
        """([selector, before]) => {
            const images = [...document.querySelectorAll(selector)];
            const sources = new Set(images.map((img) => img.src));
            return sources.size === 2 && [...sources].every((s) => !before.includes(s))
                && images.every((img) => img.complete && img.naturalWidth > 0);
        }""",
        arg=[TXT2IMG_GALLERY, first_grid],
        timeout=GENERATE_TIMEOUT_MS,
    )
    described = page.locator(TXT2IMG_SELECTED)
    expect(described).to_have_value(re.compile(r"Denoising strength: 0\.35"), timeout=GENERATE_TIMEOUT_MS)
    assert described.input_value().startswith("a paper boat on a pond")


def test_send_to_image_to_image_fills_the_tab_and_it_runs(page: Page) -> None:
    generate_grid(page, "a stone bridge", images=1)
    page.locator("#txt2img-send-img2img").click()

    expect(page.get_by_role("tab", name="Image to Image", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#img2img-image img")).to_have_count(1)
    expect(page.locator("#img2img-prompt textarea")).to_have_value("a stone bridge")

    panel = tab_panel(page, "#img2img-generate")
    open_advanced(panel)
    set_slider(panel, "Steps", 2)
    page.locator("#img2img-generate").click()
    wait_for_images(page, "#img2img-gallery img", 1)
    expect(page.locator("#img2img-selected textarea")).to_have_value(
        re.compile(r"^a stone bridge\n.*Denoising strength: 0\.6", re.S), timeout=GENERATE_TIMEOUT_MS
    )

    # The same image, edited by an instruction with the editing model (a tiny Kontext here)
    page.get_by_role("tab", name="Edit", exact=True).click()
    expect(page.locator("#edit-image img")).to_have_count(1)
    page.locator("#img2img-prompt textarea").fill("make it night")
    page.locator("#edit-generate").click()
    expect(page.locator("#img2img-selected textarea")).to_have_value(
        re.compile(r"^make it night\n.*Model: flux-kontext", re.S), timeout=GENERATE_TIMEOUT_MS
    )


def test_send_to_upscale_shows_before_and_after(page: Page) -> None:
    generate_grid(page, "a lantern", images=1)
    page.locator("#txt2img-send-upscale").click()
    expect(page.get_by_role("tab", name="Upscale", exact=True)).to_have_attribute("aria-selected", "true")
    expect(page.locator("#upscale-image img")).to_have_count(1)

    page.locator("#upscale-upscaler input").fill("Real-ESRGAN AnimeVideo v3 x2")
    page.locator("#upscale-upscaler input").press("Enter")
    page.locator("#upscale-generate").click()
    wait_for_images(page, "#upscale-slider img", 2)
    expect(page.locator("#upscale-parameters textarea")).to_have_value(
        re.compile(r"Upscaler: Real-ESRGAN AnimeVideo v3 x2"), timeout=GENERATE_TIMEOUT_MS
    )
    sizes = page.evaluate(
        "() => [...document.querySelectorAll('#upscale-slider img')].map((img) => img.naturalWidth)"
    )
    assert sorted(sizes) == [64, 256], sizes  # the tiny model's 64 px image and its x4 upscale


def test_png_info_reads_a_dropped_png_and_fills_text_to_image(page: Page, running_app, tmp_path) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a castle in fog\nNegative prompt: people\nSteps: 7, Sampler: Euler a, CFG scale: 4.5, Seed: 4242, "
        "Size: 832x1216, Model: somebody-elses-model",
    )
    dropped = tmp_path / "other-studio.png"
    Image.new("RGB", (32, 48), "gray").save(dropped, pnginfo=info)

    page.get_by_role("tab", name="PNG Info", exact=True).click()
    page.locator("#png-info-image input[type=file]").set_input_files(str(dropped))
    expect(page.locator("#png-info-text textarea")).to_have_value(
        re.compile(r"^Made with AUTOMATIC1111\na castle in fog")
    )

    page.locator("#png-info-send-txt2img").click()
    expect(page.get_by_role("tab", name="Text to Image", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#txt2img-prompt textarea")).to_have_value("a castle in fog")
    expect(page.locator("#txt2img-negative textarea")).to_have_value("people")
    panel = tab_panel(page, "#txt2img-generate")
    open_advanced(panel)
    expect(page.locator("#txt2img-seed input")).to_have_value("4242")
    expect(panel.get_by_label("number input for Steps", exact=True)).to_have_value("7")
    expect(page.locator("#txt2img-aspect-ratio input")).to_have_value("2:3")

    page.get_by_role("tab", name="PNG Info", exact=True).click()
    page.locator("#png-info-send-img2img").click()
    expect(page.get_by_role("tab", name="Image to Image", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#img2img-image img")).to_have_count(1)
    expect(page.locator("#img2img-prompt textarea")).to_have_value("a castle in fog")
