"""A phone (390×844, touch): the prompt, Generate and the grid work without sideways scrolling, and every
tab is reachable."""

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import GENERATE_TIMEOUT_MS, TXT2IMG_GALLERY, saved_pngs, wait_for_images

pytestmark = pytest.mark.e2e

TABS = ["Text to Image", "Image to Image", "Style Transfer", "Upscale", "History", "PNG Info"]


@pytest.fixture
def phone(browser: Browser, running_app) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=3, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(running_app.url)
    page.wait_for_selector("#txt2img-generate")
    yield page
    context.close()


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


def touch_stroke(page: Page, points: list[tuple[float, float]]) -> None:
    """A finger drawn through `points` (page coordinates), as a touch screen sends it."""
    session = page.context.new_cdp_session(page)
    send = session.send
    x, y = points[0]
    send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for x, y in points[1:]:
        send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        page.wait_for_timeout(16)
    send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    session.detach()


def test_on_a_phone_a_finger_paints_the_inpaint_mask(phone: Page, tmp_path, running_app) -> None:
    """Painted with touch, the mask reaches the pipeline: the result changes along the stroke and keeps
    every pixel far from it."""
    photo = tmp_path / "photo.png"
    y, x = np.mgrid[0:128, 0:128]
    original = np.stack([x * 2, y * 2, (x + y) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(original).save(photo)
    open_tab(phone, "Image to Image")
    phone.get_by_role("tab", name="Inpaint", exact=True).first.tap()
    phone.locator("#inpaint-editor input[type=file]").set_input_files(str(photo))
    canvas = phone.locator("#inpaint-editor canvas").first
    expect(canvas).to_be_visible()
    phone.wait_for_timeout(1000)
    canvas.scroll_into_view_if_needed()
    phone.wait_for_timeout(2500)
    phone.locator("#inpaint-editor button[aria-label='Brush']").tap()
    box = canvas.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, "the editor fits the screen"
    middle = box["y"] + box["height"] / 2
    touch_stroke(phone, [(box["x"] + box["width"] * f / 10, middle) for f in range(2, 9)])
    phone.locator("#img2img-prompt textarea").fill("a red band")
    before = saved_pngs(running_app.outputs)
    phone.locator("#inpaint-generate").scroll_into_view_if_needed()
    phone.locator("#inpaint-generate").tap()
    wait_for_images(phone, "#img2img-gallery img", 1)
    for _ in range(GENERATE_TIMEOUT_MS // 250):  # the grid's first picture may be a live preview
        if saved_pngs(running_app.outputs) - before:
            break
        phone.wait_for_timeout(250)
    [saved] = saved_pngs(running_app.outputs) - before
    with Image.open(saved) as result:
        made = np.asarray(result.convert("RGB").resize((128, 128)))
    changed = np.abs(made.astype(int) - original).max(axis=-1) > 8
    # The finger drew a horizontal line: a band of rows is repainted, the rest of the photo is kept.
    rows = np.flatnonzero(changed.mean(axis=1) > 0.5)
    assert rows.size >= 8, "the stroke was repainted"
    assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1)), "in one band, as it was drawn"
    untouched = np.flatnonzero(~changed.any(axis=1))
    assert untouched.size >= 20, "far from the stroke, the photo is kept"
    assert sideways_overflow(phone) == 0
