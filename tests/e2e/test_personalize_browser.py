"""Personalize in the browser: a pair made for a fixed prompt (the history is empty), a choice that starts a
profile, Steer my prompts, and a Text to Image run steered by it."""

import pytest
from playwright.sync_api import Page, expect

from studio.core.metadata import read_parameters
from tests.e2e.helpers import (
    GENERATE_TIMEOUT_MS,
    TXT2IMG_GALLERY,
    saved_pngs,
    wait_for_images,
    wait_for_saved,
)

pytestmark = pytest.mark.e2e


def test_rate_a_pair_then_steer_text_to_image_with_the_profile(page: Page, running_app, tmp_path) -> None:
    page.get_by_role("tab", name="Personalize", exact=True).click()
    status = page.locator("#personalize-status")
    expect(status).to_contain_text("Rate a pair to start your first profile")
    page.locator("#personalize-skip").click()  # nothing in the history yet: a pair is made
    pair = "#personalize-left img, #personalize-right img"
    expect(page.locator(pair)).to_have_count(2, timeout=GENERATE_TIMEOUT_MS)

    page.locator("#personalize-left-better").click()
    expect(status).to_contain_text("1 of about 40 pairs")
    code = status.locator("code").inner_text().removeprefix("--p ")
    expect(page.locator("#personalize-profile input")).to_have_value(f"Profile 1 · {code}")
    expect(page.locator(pair)).to_have_count(2, timeout=GENERATE_TIMEOUT_MS)  # the next pair
    page.locator("#personalize-right-better").click()
    expect(status).to_contain_text("2 of about 40 pairs")

    page.locator("#personalize-steer input").check()
    page.screenshot(path=str(tmp_path / "personalize.png"))
    page.get_by_role("tab", name="Text to Image", exact=True).click()
    before = saved_pngs(running_app.outputs)
    page.locator("#txt2img-prompt textarea").fill("a lighthouse")
    page.locator("#txt2img-generate").click()
    wait_for_images(page, TXT2IMG_GALLERY, 1)
    wait_for_saved(page, running_app.outputs, before)
    [saved] = saved_pngs(running_app.outputs) - before
    assert read_parameters(saved).extras["personalize"] == code
