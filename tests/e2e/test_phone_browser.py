"""A phone (390×844, touch): the prompt, Generate and the grid work without sideways scrolling, and every
tab is reachable."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import TXT2IMG_GALLERY, open_studio, wait_for_images

pytestmark = pytest.mark.e2e

TABS = [
    *("Text to Image", "Image to Image", "Blend", "Style Transfer", "Upscale", "Describe", "Style codes"),
    *("History", "PNG Info"),
]


@pytest.fixture
def phone(browser: Browser, running_app) -> Iterator[Page]:
    screen = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3}
    page = open_studio(browser, running_app.url, 60_000, **screen, is_mobile=True, has_touch=True)
    yield page
    page.context.close()


def sideways_overflow(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_on_a_phone_a_prompt_makes_a_grid_without_sideways_scrolling(phone: Page) -> None:
    assert sideways_overflow(phone) == 0
    phone.locator("#txt2img-prompt textarea").tap()
    phone.locator("#txt2img-prompt textarea").fill("a lantern on a quay")
    generate = phone.locator("#txt2img-generate")
    box = generate.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, "Generate fits the screen"
    generate.tap()
    wait_for_images(phone, TXT2IMG_GALLERY, 1)
    image = phone.locator(TXT2IMG_GALLERY).first.bounding_box()
    assert image and image["x"] >= 0 and image["x"] + image["width"] <= 390, "the grid fits the screen"
    assert sideways_overflow(phone) == 0


def open_tab(phone: Page, label: str) -> None:
    tab = phone.get_by_role("tab", name=label, exact=True).first
    if not tab.is_visible():  # tabs that do not fit wait behind the "More tabs" menu
        phone.get_by_role("button", name="More tabs").first.tap()  # the studio's, not a tab's own
        tab = phone.get_by_role("button", name=label, exact=True).first
    tab.tap()


def test_on_a_phone_every_tab_is_reachable_and_fits(phone: Page) -> None:
    for label in TABS[1:]:
        open_tab(phone, label)
        expect(phone.get_by_role("tab", name=label, exact=True).first).to_have_attribute(
            "aria-selected", "true"
        )
        assert sideways_overflow(phone) == 0, label
