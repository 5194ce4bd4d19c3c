"""A phone (390×844, touch): the prompt, Generate and the grid work without sideways scrolling, every tab
is reachable, and a finger paints an inpaint mask."""

import re
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from studio.ui.i18n import catalogue
from tests.e2e.helpers import TXT2IMG_GALLERY, open_studio, saved_pngs, wait_for_images, wait_for_saved

pytestmark = pytest.mark.e2e

TABS = [
    *("Text to Image", "Image to Image", "Blend", "Style Transfer", "Upscale", "Describe", "Style codes"),
    *("History", "PNG Info"),
]


PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}


@pytest.fixture
def phone(browser: Browser, running_app) -> Iterator[Page]:
    page = open_studio(browser, running_app.url, 60_000, **PHONE)
    yield page
    page.context.close()


def text_lines(page: Page, selector: str) -> int:
    """How many lines the text of the element at `selector` takes."""
    return page.locator(selector).evaluate(
        """(element) => {
            const range = document.createRange();
            range.selectNodeContents(element);
            return new Set([...range.getClientRects()].map((rect) => Math.round(rect.bottom))).size;
        }"""
    )


def test_a_chinese_phone_shows_its_placeholder_and_one_line_buttons_in_chinese(
    browser: Browser, running_app
) -> None:
    page = open_studio(browser, running_app.url, 60_000, locale="zh-CN", **PHONE)
    words = catalogue()
    expect(page.locator("#txt2img-reroll")).to_have_text(words["Reroll"])
    placeholder = page.locator("#txt2img-prompt textarea").get_attribute("placeholder")
    assert (
        placeholder
        == words["A lighthouse on a cliff at dawn, waves crashing…"]
        != ("A lighthouse on a cliff at dawn, waves crashing…")
    )
    for button in ("#txt2img-generate", "#txt2img-reroll", "#txt2img-stop"):
        assert text_lines(page, button) == 1, button
    page.screenshot(path=str(running_app.outputs.parent / "zh-CN-phone.png"))
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


def swipe(page: Page, start: tuple[float, float], end: tuple[float, float], moves: int = 12) -> None:
    """A finger drawn from `start` to `end` as the browser's touch events (Playwright's own touch emulation
    only taps)."""
    touch = page.context.new_cdp_session(page)
    points = [
        (start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
        for t in np.linspace(0, 1, moves)
    ]
    touch.send(
        "Input.dispatchTouchEvent",
        {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]},
    )
    for x, y in points[1:]:
        touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        page.evaluate("() => new Promise(requestAnimationFrame)")  # drawn before the finger moves on
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_on_a_phone_a_finger_paints_the_region_inpaint_repaints(phone: Page, running_app, tmp_path) -> None:
    picture = tmp_path / "noise.png"
    original = np.random.default_rng(7).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(original).save(picture)
    open_tab(phone, "Image to Image")
    phone.get_by_role("tab", name="Inpaint", exact=True).tap()
    phone.locator("#img2img-prompt textarea").fill("a red door")
    editor = phone.locator("#inpaint-editor")
    editor.locator("input[type=file]").set_input_files(str(picture))
    expect(editor.get_by_text("Upload an image")).to_be_hidden(timeout=30_000)  # slow on a busy machine
    # An upload selects the brush, so the first stroke paints.
    expect(editor.locator("button[aria-label='Brush']")).to_have_class(re.compile("highlight"))
    canvas = editor.locator("canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, "the editor fits the screen"
    label = editor.get_by_test_id("block-label").bounding_box()
    zoom_bar = editor.locator(".top-panel").bounding_box()
    assert label and zoom_bar and label["y"] + label["height"] <= zoom_bar["y"], "the instruction shows whole"
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # the picture's centre too
    swipe(phone, (middle[0] - 50, middle[1]), (middle[0] + 50, middle[1]))  # across the middle
    before = saved_pngs(running_app.outputs)
    phone.locator("#inpaint-generate").tap()
    wait_for_saved(phone, running_app.outputs, before)
    [result] = saved_pngs(running_app.outputs) - before
    changed = np.abs(np.asarray(Image.open(result).convert("RGB"), dtype=int) - original).max(axis=2) > 0
    assert changed[120:136, 100:156].all(), "where the finger went is repainted"
    assert not changed[:40].any() and not changed[-40:].any(), "above and below the stroke stays"
    assert not changed[:, :12].any() and not changed[:, -12:].any(), "beside its ends stays"
