"""Browser fixtures: Debian's Chromium driven by Playwright, one fresh page per test on the running studio."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.helpers import open_studio

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "The browser tests need Chromium on PATH as `chromium` "
            "(Debian/Ubuntu: apt-get install chromium); none was found.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, running_app) -> Iterator[Page]:
    """A fresh browser session on the studio, loaded and ready; fails the test on uncaught page errors."""
    page = open_studio(browser, running_app.url)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    yield page
    page.context.close()
    assert not page_errors, f"uncaught errors in the page: {page_errors}"
