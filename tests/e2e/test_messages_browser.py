"""Messages in the page: one per event, on the tab they belong to."""

from __future__ import annotations

import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.helpers import toast

pytestmark = pytest.mark.e2e


def test_a_text_file_named_png_in_png_info_is_one_message(page: Page, tmp_path) -> None:
    bad, good = tmp_path / "notes.png", tmp_path / "plain.png"
    bad.write_text("not a picture, only a name that says so")
    Image.new("RGB", (16, 16), "gray").save(good)
    page.get_by_role("tab", name="PNG Info", exact=True).click()
    upload = page.locator("#png-info-image input[type=file]")
    upload.set_input_files(str(bad))
    expect(toast(page, "notes.png could not be read as an image")).to_have_count(1)
    # A picture dropped after it is read after every handler of the bad file has answered.
    upload.set_input_files(str(good))
    expect(page.locator("#png-info-note")).to_contain_text(re.compile("carries no"))
    expect(toast(page, "notes.png could not be read as an image")).to_have_count(1)
