"""Describe in the browser: drop an image, get four suggestions, "Use this prompt" opens Text to Image with
that prompt, whose Generate then makes a grid."""

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.helpers import GENERATE_TIMEOUT_MS, TXT2IMG_GALLERY, wait_for_images

pytestmark = pytest.mark.e2e


def test_describe_then_use_this_prompt_fills_text_to_image(page: Page, tmp_path) -> None:
    photo = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(photo)
    page.locator("#txt2img-negative textarea").fill("blurry")  # kept: only the prompt is sent
    page.get_by_role("tab", name="Describe", exact=True).click()
    page.locator("#describe-image input[type=file]").set_input_files(str(photo))
    page.locator("#describe-run").click()
    boxes = [page.locator(f"#describe-prompt-{n} textarea") for n in range(1, 5)]
    expect(boxes[3]).not_to_have_value("", timeout=GENERATE_TIMEOUT_MS)
    suggestions = [box.input_value() for box in boxes]
    assert len(set(suggestions)) == 4 and all(s.endswith("--ar 3:2") for s in suggestions), suggestions

    page.locator("#describe-use-2").click()
    expect(page.get_by_role("tab", name="Text to Image", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#txt2img-prompt textarea")).to_have_value(suggestions[1])
    expect(page.locator("#txt2img-negative textarea")).to_have_value("blurry")
    page.locator("#txt2img-generate").click()
    wait_for_images(page, TXT2IMG_GALLERY, 1)


def test_an_offline_captioner_is_said_on_the_tabs_status_line(page: Page, tmp_path) -> None:
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(photo)
    page.get_by_role("tab", name="Describe", exact=True).click()
    page.locator("#describe-image input[type=file]").set_input_files(str(photo))
    captioner = page.locator("#describe-captioner input")
    captioner.fill("Salesforce/blip-image-captioning-large")  # on the hub, which this machine cannot reach
    captioner.blur()
    expect(captioner).to_have_value("Salesforce/blip-image-captioning-large")
    page.locator("#describe-run").click()
    status = page.locator("#describe-status")
    expect(status).to_contain_text("blip-image-captioning-large", timeout=GENERATE_TIMEOUT_MS)
    expect(page.locator("#describe-prompt-1 textarea")).to_have_value("")
    # Once its toast is closed, the message is still there to read.
    for close in page.get_by_test_id("toast-close").all():
        close.click()
    expect(page.get_by_test_id("toast-text")).to_have_count(0)
    expect(status).to_contain_text("blip-image-captioning-large")
    # The line says what went wrong: Gradio's bare "Error" badge would only cover its words.
    expect(status.get_by_text("Error", exact=True)).to_be_hidden()
    page.screenshot(path=str(tmp_path / "describe-offline.png"))
