"""Page helpers shared by the browser tests; each works inside one tab's panel."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect

from tests.conditions import wait_until

LOAD_TIMEOUT_MS = 30_000
GENERATE_TIMEOUT_MS = 90_000
SLIDER_ATTEMPTS = 3
TXT2IMG_GALLERY = "#txt2img-gallery img"  # the images of Text to Image's result grid
TXT2IMG_SELECTED = "#txt2img-selected textarea"  # the selected image's parameters


def saved_pngs(outputs: Path) -> set[Path]:
    """The results saved so far (not a save in progress, which writes a hidden file first)."""
    return {path for path in outputs.glob("*/*.png") if not path.name.startswith(".")}


def wait_for_saved(page: Page, outputs: Path, before: set[Path]) -> None:
    """Until a result is saved beyond `before` (a grid shows live previews before its first image); fails
    when none is within the generation timeout."""
    try:  # the files are the server's: polled, as nothing in the page says
        wait_until(lambda: bool(saved_pngs(outputs) - before), timeout=GENERATE_TIMEOUT_MS / 1000)
    except AssertionError:
        raise AssertionError(
            f"no result saved in {outputs} within {GENERATE_TIMEOUT_MS / 1000:.0f} s"
        ) from None


def toast(page: Page, text: str) -> Locator:
    return page.get_by_test_id("toast-text").filter(has_text=text)


def tab_panel(page: Page, marker: str) -> Locator:
    """The (outermost) tab panel holding `marker`, so labels tabs share ("Steps") stay unambiguous."""
    return page.locator('[role="tabpanel"]').filter(has=page.locator(marker)).first


def set_slider(panel: Locator, label: str, value: float) -> None:
    """Type into a slider's number box; the range handle following proves Gradio took the value."""
    number = panel.get_by_label(f"number input for {label}", exact=True)
    typed(number, value, taken=panel.get_by_label(f"range slider for {label}", exact=True))


def set_number(number: Locator, value: int) -> None:
    """Type into a number box, committed (Enter, then leaving it)."""
    typed(number, value, taken=number)


def typed(number: Locator, value: float, *, taken: Locator) -> None:
    """Type `value` into `number` until `taken` shows it. Typed again if it did not take: right after the
    Advanced accordion opens, a slider or number box sometimes puts its default back over what was typed
    (about once in 60 tries, with no server event involved)."""
    for _ in range(SLIDER_ATTEMPTS):
        number.fill(str(value))
        number.press("Enter")
        number.blur()
        try:
            expect(taken).to_have_value(str(value), timeout=2_000)
            return
        except AssertionError:
            continue
    expect(taken).to_have_value(str(value))


def open_advanced(panel: Locator) -> None:
    steps = panel.get_by_label("number input for Steps", exact=True)
    if not steps.is_visible():
        panel.locator("button.label-wrap", has_text=re.compile(r"^\s*Advanced\b")).click()
    expect(steps).to_be_visible()


def wait_for_images(page: Page, selector: str, count: int) -> None:
    """Wait until `selector` matches exactly `count` images, each loaded with real pixels."""
    expect(page.locator(selector)).to_have_count(count, timeout=GENERATE_TIMEOUT_MS)
    page.wait_for_function(
        """([selector, count]) => {
            const images = [...document.querySelectorAll(selector)];
            return images.length === count && images.every((img) => img.complete && img.naturalWidth > 0);
        }""",
        arg=[selector, count],
        timeout=GENERATE_TIMEOUT_MS,
    )


def wait_for_results(page: Page, selector: str, task: str, count: int = 1) -> None:
    """Until the grid `selector` shows `count` saved results of `task` (files named "00012-blend-77.png",
    or "00013-style_transfer.png" when nothing was seeded), not the live preview a grid shows while the
    first one denoises."""
    saved = f"{selector}:is([src*='-{task}-'], [src*='-{task}.png'])"
    expect(page.locator(saved)).to_have_count(count, timeout=GENERATE_TIMEOUT_MS)


def image_sources(page: Page, selector: str) -> list[str]:
    return page.evaluate("(s) => [...document.querySelectorAll(s)].map((img) => img.src)", selector)


def open_studio(browser: Browser, url: str, timeout_ms: int = LOAD_TIMEOUT_MS, **context: Any) -> Page:
    """The studio in a fresh browser context (`context`: its viewport, locale, touch...), loaded and ready."""
    page = browser.new_context(**{"viewport": {"width": 1400, "height": 1000}, **context}).new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    page.wait_for_selector("#txt2img-generate")
    return page
