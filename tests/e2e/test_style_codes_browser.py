"""Style codes in the browser: a style image saved as a code under Image prompts, then, on a fresh page,
the code picked from the saved ones (--sref CODE in the prompt) makes a grid whose PNG carries that style;
the Style codes tab lists it."""

import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from studio.core.metadata import read_parameters
from studio.core.style_codes import read_style
from tests.e2e.helpers import GENERATE_TIMEOUT_MS, open_studio, saved_pngs, wait_for_saved

pytestmark = pytest.mark.e2e


def open_image_prompts(page: Page) -> None:
    page.locator("#txt2img-image-prompts button.label-wrap").click()
    expect(page.locator("#txt2img-save-style")).to_be_visible()


def test_a_style_saved_as_a_code_is_reused_by_its_code(page: Page, browser: Browser, running_app, tmp_path):
    painting = tmp_path / "sea-glass.png"
    gradient = np.linspace(0, 255, 64 * 96 * 3).reshape(64, 96, 3).astype(np.uint8)
    Image.fromarray(gradient).save(painting)
    open_image_prompts(page)
    page.locator("#txt2img-style-1 input[type=file]").set_input_files(str(painting))
    expect(page.locator("#txt2img-style-1 img")).to_be_visible()
    page.locator("#txt2img-style-name input").fill("Sea glass")
    page.locator("#txt2img-save-style").click()
    saved = page.locator("#txt2img-style-saved")
    expect(saved).to_contain_text("Saved as style code", timeout=GENERATE_TIMEOUT_MS)
    code = re.search(r"style code ([a-z2-7]{8})", saved.inner_text()).group(1)

    # Another visit: no style image, only the saved code
    fresh = open_studio(browser, running_app.url)
    try:
        fresh.locator("#txt2img-prompt textarea").fill("a lighthouse")
        open_image_prompts(fresh)
        fresh.locator("#txt2img-style-codes input").click()
        fresh.get_by_role("option", name=re.compile(rf"^{code} · Sea glass")).click()
        expect(fresh.locator("#txt2img-prompt textarea")).to_have_value(f"a lighthouse --sref {code}")
        before = saved_pngs(running_app.outputs)
        fresh.locator("#txt2img-generate").click()
        wait_for_saved(fresh, running_app.outputs, before)
        [made] = saved_pngs(running_app.outputs) - before
        assert read_parameters(made).extras["style_codes"] == [code]
        assert read_style(made).code == code, "the result carries the style it was made with"

        fresh.get_by_role("tab", name="Style codes", exact=True).click()
        expect(fresh.locator("#styles-codes")).to_contain_text(code)
        expect(fresh.locator("#styles-codes")).to_contain_text("Sea glass")
    finally:
        fresh.context.close()
