"""Live previews in the result grid while an image denoises, and Enhance on a fast-decoded result."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import RunningApp, launch_app, studio_settings
from tests.e2e.helpers import (
    GENERATE_TIMEOUT_MS,
    TXT2IMG_GALLERY,
    TXT2IMG_SELECTED,
    open_advanced,
    saved_pngs,
    set_slider,
    tab_panel,
    wait_for_images,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running_app(
    tiny_sd: Path, fast_decoder_presets_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    """The studio on the tiny model, with a tiny TAESD as its fast decoder."""
    settings = studio_settings(
        tiny_sd, tmp_path_factory.mktemp("outputs"), presets_dir=fast_decoder_presets_dir
    )
    running = launch_app(settings)
    yield running
    running.demo.close()


def test_previews_show_in_the_grid_while_it_runs_and_enhance_redoes_an_image_with_the_full_vae(
    page: Page, running_app: RunningApp
) -> None:
    panel = tab_panel(page, "#txt2img-generate")
    open_advanced(panel)
    set_slider(panel, "Steps", 60)
    page.locator("#txt2img-previews").get_by_label("Approximate").check()
    page.locator("#txt2img-prompt textarea").fill("a lighthouse at dawn")
    before = saved_pngs(running_app.outputs)
    page.locator("#txt2img-generate").click()

    # An unfinished image appears in the grid, captioned with its step, before the finished one.
    page.wait_for_function(
        """(selector) => [...document.querySelectorAll(selector)].some(
            (element) => /· step \\d+ of 60/.test(element.textContent))""",
        arg="#txt2img-gallery",
        timeout=GENERATE_TIMEOUT_MS,
    )
    wait_for_images(page, TXT2IMG_GALLERY, 1)
    expect(page.locator(TXT2IMG_SELECTED)).to_have_value(
        re.compile(r"Decoder: fast"), timeout=GENERATE_TIMEOUT_MS
    )
    expect(page.locator("#txt2img-gallery")).not_to_contain_text(re.compile(r"· step \d+"))
    assert len(saved_pngs(running_app.outputs) - before) == 1, "the history holds the image, no preview"

    set_slider(panel, "Steps", 3)
    page.locator("#txt2img-enhance").click()
    expect(page.locator(TXT2IMG_SELECTED)).to_have_value(
        re.compile(r"Decoder: full"), timeout=GENERATE_TIMEOUT_MS
    )
    expect(page.locator(TXT2IMG_SELECTED)).to_have_value(re.compile(r"Steps: 60,"))
    expect(page.locator("#txt2img-reroll")).to_have_text("Reroll (Enhance)")
