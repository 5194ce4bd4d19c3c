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
    set_number,
    set_slider,
    tab_panel,
    wait_for_images,
    wait_for_results,
)

pytestmark = pytest.mark.e2e

GALLERY = TXT2IMG_GALLERY


# Any text a prompt may hold: Arabic, emoji (one joined of three), CJK, a right-to-left override, a line
# separator and markup that would end a page's script.
ANY_TEXT = (
    "منارة عند الفجر 🌊 \U0001f468\u200d\U0001f469\u200d\U0001f467 灯塔 \u202eevil\u202c "
    "e\u0301 \u2028 </script><b>bold</b> & done"
)


@pytest.mark.parametrize("prompt", ["a harbour at night", ANY_TEXT], ids=["ascii", "any-text"])
def test_a_copied_link_reopens_the_same_grid_and_settings(page: Page, prompt: str) -> None:
    panel = tab_panel(page, "#txt2img-generate")
    open_advanced(panel)
    page.locator("#txt2img-prompt textarea").fill(prompt)
    set_slider(panel, "Images", 2)
    set_number(page.locator("#txt2img-seed input"), 321)
    page.locator("#txt2img-generate").click()
    wait_for_results(page, GALLERY, "txt2img", 2)  # both saved: a live preview is no result to link to
    shown = image_sources(page, GALLERY)
    assert all(re.search(r"-txt2img-32[12]\.png", source) for source in shown), shown  # the seed typed
    again = reopened(page)
    wait_for_results(again, GALLERY, "txt2img", 2)
    expect(again.locator("#txt2img-prompt textarea")).to_have_value(prompt)
    open_advanced(tab_panel(again, "#txt2img-generate"))
    expect(again.locator("#txt2img-seed input")).to_have_value("321")
    names = [source.rsplit("/", 1)[-1] for source in image_sources(again, GALLERY)]
    assert names == [source.rsplit("/", 1)[-1] for source in shown]


def copied_link(page: Page) -> str:
    """The link the button copies, once the server has stored the page's state."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    # The browser's clipboard outlives a context: an earlier test's link must not pass for this one
    page.evaluate("navigator.clipboard.writeText('')")
    page.get_by_role("button", name="Copy a link to this page").click()
    expect(page.get_by_role("button", name="Link copied")).to_be_visible()
    # Written once the server has answered: read again at each frame until it holds something.
    link = page.evaluate(
        """async () => {
            const until = performance.now() + 10000;
            while (performance.now() < until) {
                const text = await navigator.clipboard.readText();
                if (text) return text;
                await new Promise(requestAnimationFrame);
            }
            return "";
        }"""
    )
    assert re.search(r"[?&]deep_link=", link), link
    return link


def reopened(page: Page, tab: str | None = None) -> Page:
    """A new page opened from the link `page` copies, on `tab`."""
    again = page.context.new_page()
    again.goto(copied_link(page))
    if tab:
        again.get_by_role("tab", name=tab, exact=True).click()
    return again


def test_a_link_to_a_blend_reopens_its_grid_and_settings(page: Page, tmp_path) -> None:
    page.get_by_role("tab", name="Blend", exact=True).click()
    panel = tab_panel(page, "#blend-generate")
    for number in (1, 2):
        page.locator(f"#blend-image-{number} input[type=file]").set_input_files(
            noise_picture(tmp_path, number)
        )
        expect(page.locator(f"#blend-image-{number} img")).to_be_visible()
    open_advanced(panel)
    page.locator("#blend-prompt textarea").fill("a meadow")
    set_number(page.locator("#blend-seed input"), 77)
    page.locator("#blend-generate").click()
    wait_for_results(page, "#blend-gallery img", "blend")
    again = reopened(page, "Blend")
    wait_for_results(again, "#blend-gallery img", "blend")
    expect(again.locator("#blend-prompt textarea")).to_have_value("a meadow")
    open_advanced(tab_panel(again, "#blend-generate"))
    expect(again.locator("#blend-seed input")).to_have_value("77")


def noise_picture(tmp_path, number: int, size: tuple[int, int] = (64, 64)) -> str:
    picture = tmp_path / f"picture-{number}.png"
    noise = np.random.default_rng(number).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(noise).save(picture)
    return str(picture)


def test_a_link_to_a_style_transfer_reopens_its_grid_and_styles(page: Page, tmp_path) -> None:
    page.get_by_role("tab", name="Style Transfer", exact=True).click()
    panel = tab_panel(page, "#style-generate")
    page.locator("#style-image input[type=file]").set_input_files(noise_picture(tmp_path, 3, (96, 64)))
    expect(page.locator("#style-image img")).to_have_count(1)
    page.locator("#style-previews img").nth(19).click()  # Night Swirl, beside the default style
    expect(page.locator("#style-neural-styles .token")).to_have_count(2)
    set_slider(panel, "Weight of Night Swirl", 0.4)
    set_slider(panel, "Strength", 0.65)
    page.locator("#style-generate").click()
    wait_for_results(page, "#style-gallery img", "style_transfer")
    again = reopened(page, "Style Transfer")
    wait_for_results(again, "#style-gallery img", "style_transfer")
    expect(again.locator("#style-neural-styles .token")).to_have_count(2)
    expect(again.locator("#style-neural-styles .token").nth(1)).to_contain_text("Night Swirl")
    restored = tab_panel(again, "#style-generate")
    expect(restored.get_by_label("number input for Weight of Night Swirl", exact=True)).to_have_value("0.4")
    expect(restored.get_by_label("number input for Strength", exact=True)).to_have_value("0.65")


def test_a_link_to_an_upscale_reopens_its_result_and_settings(page: Page, tmp_path) -> None:
    page.get_by_role("tab", name="Upscale", exact=True).click()
    page.locator("#upscale-image input[type=file]").set_input_files(noise_picture(tmp_path, 4, (48, 32)))
    expect(page.locator("#upscale-image img")).to_have_count(1)
    page.locator("#upscale-upscaler input").fill("Lanczos (no model)")
    page.locator("#upscale-upscaler input").press("Enter")
    page.locator("#upscale-scale").get_by_label("3", exact=True).check()
    page.locator("#upscale-generate").click()
    wait_for_images(page, "#upscale-slider img", 2)
    again = reopened(page, "Upscale")
    wait_for_images(again, "#upscale-slider img", 2)
    expect(again.locator("#upscale-upscaler input")).to_have_value("Lanczos (no model)")
    expect(again.locator("#upscale-scale").get_by_label("3", exact=True)).to_be_checked()
    expect(again.locator("#upscale-parameters textarea")).to_have_value(re.compile(r"48x32->144x96"))


def test_a_link_to_a_diffusion_style_transfer_reopens_its_mode_and_prompt(page: Page, tmp_path) -> None:
    page.get_by_role("tab", name="Style Transfer", exact=True).click()
    panel = tab_panel(page, "#style-generate")
    page.locator("#style-image input[type=file]").set_input_files(noise_picture(tmp_path, 5, (64, 64)))
    expect(page.locator("#style-image img")).to_have_count(1)
    page.get_by_label("Diffusion (keeps structure, any style)").check()
    page.locator("#style-prompt textarea").fill("woodcut print")
    set_slider(panel, "Denoising strength", 0.6)
    open_advanced(panel)
    set_slider(panel, "Steps", 2)
    page.locator("#style-generate").click()
    wait_for_results(page, "#style-gallery img", "style_transfer")
    again = reopened(page, "Style Transfer")
    wait_for_results(again, "#style-gallery img", "style_transfer")
    expect(again.get_by_label("Diffusion (keeps structure, any style)")).to_be_checked()
    expect(again.locator("#style-prompt textarea")).to_have_value("woodcut print")
    restored = tab_panel(again, "#style-generate")
    expect(restored.get_by_label("number input for Denoising strength", exact=True)).to_have_value("0.6")
