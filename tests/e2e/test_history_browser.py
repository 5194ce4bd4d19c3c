"""The History tab in a headless Chromium: search, send a result to Image to Image, delete and restore."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import GENERATE_TIMEOUT_MS, open_advanced, set_slider, tab_panel, wait_for_images

pytestmark = pytest.mark.e2e


def generate(page: Page, prompt: str, *, batch: bool = False, images: int = 1) -> None:
    panel = tab_panel(page, "#txt2img-generate")
    page.locator("#txt2img-prompt textarea").fill(prompt)
    if batch:
        page.locator("#txt2img-batch input").check()
    open_advanced(panel)
    set_slider(panel, "Steps", 2)
    page.locator("#txt2img-generate").click()
    wait_for_images(page, "#txt2img-gallery img", images)


def open_history(page: Page) -> None:
    page.get_by_role("tab", name="History", exact=True).click()
    expect(page.locator("#history-page")).to_contain_text("result", timeout=GENERATE_TIMEOUT_MS)


def test_search_send_to_image_to_image_and_delete(page: Page, running_app) -> None:
    generate(page, "a heron in reeds\na copper kettle\na heron at dawn", batch=True, images=3)
    expect(page.locator("#txt2img-reroll")).to_have_text("Reroll (3 prompts)")
    open_history(page)

    search = page.locator("#history-search textarea")
    search.fill("heron")
    search.press("Enter")
    expect(page.locator("#history-page")).to_contain_text("2 results")
    expect(page.locator("#history-gallery .thumbnail-item")).to_have_count(2)
    page.locator("#history-gallery .thumbnail-item").first.click()
    expect(page.locator("#history-parameters textarea")).to_have_value(re.compile(r"^a heron at dawn\n"))

    page.locator("#history-send-img2img").click()
    expect(page.get_by_role("tab", name="Image to Image", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#img2img-prompt textarea")).to_have_value("a heron at dawn")
    expect(page.locator("#img2img-image img")).to_have_count(1)

    open_history(page)
    search.fill("heron")
    search.press("Enter")
    expect(page.locator("#history-page")).to_contain_text("2 results")
    page.locator("#history-gallery .thumbnail-item").first.click()
    expect(page.locator("#history-parameters textarea")).to_have_value(re.compile(r"^a heron at dawn\n"))
    before = {p.name for p in running_app.outputs.glob("*/*.png")}
    page.locator("#history-delete").click()
    expect(page.locator("#history-note")).to_contain_text("Moved to the trash")
    expect(page.locator("#history-page")).to_contain_text("1 result")
    gone = before - {p.name for p in running_app.outputs.glob("*/*.png")}
    assert len(gone) == 1, "the file left its folder"
    assert (running_app.outputs / ".trash").exists() and any(
        (running_app.outputs / ".trash").rglob(gone.pop())
    )

    page.locator("#history-trashed input").check()
    expect(page.locator("#history-page")).to_contain_text("1 result")
    page.locator("#history-gallery .thumbnail-item").first.click()
    page.locator("#history-restore").click()
    expect(page.locator("#history-note")).to_contain_text("Restored")
    page.locator("#history-trashed input").uncheck()
    expect(page.locator("#history-page")).to_contain_text("2 results")


def test_vary_and_use_seed_from_the_history(page: Page) -> None:
    generate(page, "a brass telescope")
    expect(page.locator("#txt2img-selected textarea")).to_have_value(re.compile(r"Seed: \d+"))
    seed = re.search(r"Seed: (\d+)", page.locator("#txt2img-selected textarea").input_value()).group(1)
    open_history(page)
    page.locator("#history-gallery .thumbnail-item").first.click()
    expect(page.locator("#history-parameters textarea")).to_have_value(re.compile(r"^a brass telescope\n"))
    page.locator("#txt2img-seed input").evaluate("(input) => { input.value = '-1'; }")
    page.locator("#history-use-seed").click()
    expect(page.get_by_role("tab", name="Text to Image", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#txt2img-seed input")).to_have_value(seed)

    open_history(page)
    page.locator("#history-gallery .thumbnail-item").first.click()
    expect(page.locator("#history-parameters textarea")).to_have_value(re.compile(r"^a brass telescope\n"))
    page.locator("#history-vary-subtle").click()
    expect(page.get_by_role("tab", name="Image to Image", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    wait_for_images(page, "#img2img-gallery img", 1)
    expect(page.locator("#img2img-selected textarea")).to_have_value(
        re.compile(r"^a brass telescope\n.*Denoising strength: 0\.35", re.S), timeout=GENERATE_TIMEOUT_MS
    )


def test_png_info_maps_another_studios_sampler_and_seed_to_ours_with_a_note(page: Page) -> None:
    from pathlib import Path

    comfy = (
        Path(__file__).resolve().parents[1] / "data" / "peer_images" / "night_evening_day_morning_cropped.png"
    )
    page.get_by_role("tab", name="PNG Info", exact=True).click()
    page.locator("#png-info-image input[type=file]").set_input_files(str(comfy))
    expect(page.locator("#png-info-text textarea")).to_have_value(re.compile(r"^Made with ComfyUI\n"))
    page.locator("#png-info-send-txt2img").click()
    note = page.get_by_test_id("toast-text").filter(has_text="From ComfyUI")
    expect(note).to_contain_text("its sampler dpmpp_sde normal has no equivalent here")
    expect(note).to_contain_text(
        f"its seed 335608130539327 is beyond this studio's 0–4294967295, so {335608130539327 % 2**32}"
    )
    open_advanced(tab_panel(page, "#txt2img-generate"))
    expect(page.locator("#txt2img-seed input")).to_have_value(str(335608130539327 % 2**32))
    expect(page.locator("#txt2img-prompt textarea")).to_have_value(
        re.compile(r"^\(best quality\) \(daytime:1\.2\)")
    )
