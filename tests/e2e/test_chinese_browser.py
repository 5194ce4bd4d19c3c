"""The studio in Simplified Chinese: a browser whose language is zh-CN sees Chinese labels, buttons, tab
names and messages; switching the language under Settings switches both the page and the messages."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from studio.ui.i18n import catalogue, translate
from tests.e2e.helpers import TXT2IMG_GALLERY, open_studio, toast, wait_for_images

pytestmark = pytest.mark.e2e

NO_GRID_YET = "Make an image first, then pick one in the results."


@pytest.fixture
def chinese(browser: Browser, running_app) -> Iterator[Page]:
    page = open_studio(browser, running_app.url, 60_000, locale="zh-CN")
    yield page
    page.context.close()


def test_a_chinese_browser_sees_chinese_labels_tabs_and_messages(chinese: Page) -> None:
    words = catalogue()
    assert words["Prompt"] == "提示词" and words["Text to Image"] == "文生图"
    for tab in ("Text to Image", "Image to Image", "Style Transfer", "Upscale", "History", "PNG Info"):
        expect(chinese.get_by_role("tab", name=words[tab], exact=True).first).to_be_visible()
    expect(chinese.locator("#txt2img-prompt")).to_contain_text("提示词")
    expect(chinese.locator("#txt2img-generate")).to_have_text(words["Generate"])
    expect(chinese.get_by_role("button", name=words["Copy a link to this page"])).to_be_visible()
    # Filled by the server in the page's language as it loads.
    expect(chinese.locator("#studio-header")).to_contain_text(
        translate("Instant style transfer and Real-ESRGAN upscaling run well on a CPU.")
    )
    # A refusal, said by the server, in Chinese.
    chinese.locator("#txt2img-use-seed").click()
    expect(toast(chinese, translate(NO_GRID_YET))).to_be_visible()
    assert translate(NO_GRID_YET) != NO_GRID_YET

    chinese.locator("#txt2img-prompt textarea").fill("一座海边的灯塔")
    chinese.locator("#txt2img-generate").click()
    wait_for_images(chinese, TXT2IMG_GALLERY, 1)


def test_the_language_chosen_under_settings_switches_the_page_and_its_messages(chinese: Page) -> None:
    chinese.get_by_text("设置", exact=True).last.click()  # Gradio's own footer link
    chinese.get_by_role("combobox", name="Language").click()
    chinese.get_by_role("option", name="English").first.click()
    chinese.locator("[role=dialog] button").first.click()  # its close button
    expect(chinese.get_by_role("tab", name="Text to Image", exact=True).first).to_be_visible()
    expect(chinese.locator("#txt2img-generate")).to_have_text("Generate")
    chinese.locator("#txt2img-use-seed").click()
    expect(toast(chinese, NO_GRID_YET)).to_be_visible()
