"""What a newcomer hit in the page: lost grids, silent buttons, stale PNG Info, a missing seed control, a
silent first start, and a layout that wrapped. Each test would fail without its fix."""

from __future__ import annotations

import itertools
import re
import threading

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    GENERATE_TIMEOUT_MS,
    TXT2IMG_GALLERY,
    TXT2IMG_SELECTED,
    open_advanced,
    open_studio,
    saved_pngs,
    set_slider,
    tab_panel,
    toast,
    wait_for_images,
    wait_for_saved,
)

pytestmark = pytest.mark.e2e

GALLERY, SELECTED = TXT2IMG_GALLERY, TXT2IMG_SELECTED


def make_grid(page: Page, prompt: str, images: int = 1, steps: int = 2, seed: int | None = None) -> None:
    panel = tab_panel(page, "#txt2img-generate")
    page.locator("#txt2img-prompt textarea").fill(prompt)
    set_slider(panel, "Images", images)
    open_advanced(panel)
    set_slider(panel, "Steps", steps)
    if seed is not None:
        page.locator("#txt2img-seed input").fill(str(seed))
    page.locator("#txt2img-generate").click()
    wait_for_images(page, GALLERY, images)
    expect(page.locator(SELECTED)).to_have_value(re.compile(r"Seed: \d+"), timeout=GENERATE_TIMEOUT_MS)


def test_a_refused_request_leaves_the_last_grid_in_view_with_the_message_beside_it(page: Page) -> None:
    make_grid(page, "a windmill", images=2)
    shown = page.locator(GALLERY).first
    page.locator("#txt2img-seed input").fill("99999999999")
    page.locator("#txt2img-generate").click()
    status = page.locator("#txt2img-status")
    expect(status).to_contain_text("Seed must be between -1 and 4294967295", timeout=GENERATE_TIMEOUT_MS)
    expect(status.get_by_text("Error", exact=True)).to_be_hidden()  # the line says it, uncovered
    expect(toast(page, "Seed must be between -1 and 4294967295")).to_be_visible()
    expect(shown).to_be_visible()
    expect(page.locator(GALLERY)).to_have_count(2)
    expect(page.locator(SELECTED)).to_have_value(re.compile(r"^a windmill\n"))


def hold_the_second_image(cache, until: threading.Event, monkeypatch) -> None:
    """The second denoising call of the next run finishes its steps, then waits for `until`: on a fast
    backend a run's other images would otherwise finish before the test can act in between."""
    denoise, calls = cache.denoise, itertools.count()

    def second_waits(base, size, call, **kwargs):
        if next(calls) != 1:
            return denoise(base, size, call, **kwargs)

        def then_wait():
            finished = call()
            until.wait(timeout=GENERATE_TIMEOUT_MS / 1000)
            return finished

        return denoise(base, size, then_wait, **kwargs)

    monkeypatch.setattr(cache, "denoise", second_waits)


def test_stop_says_how_far_the_run_got_with_no_error_and_no_unfinished_preview(
    page: Page, running_app, monkeypatch
) -> None:
    # The second image holds, its previews shown, until Stop is pressed: on a fast backend the other three
    # would otherwise finish before the click lands.
    stop_pressed = threading.Event()
    hold_the_second_image(running_app.demo.studio.cache, stop_pressed, monkeypatch)
    # A preview after every step but the last, however fast the steps (the studio times them otherwise).
    monkeypatch.setattr("pipelines.parts.previews.preview_due", lambda step, steps, **_: step < steps)
    panel = tab_panel(page, "#txt2img-generate")
    page.locator("#txt2img-prompt textarea").fill("a slow river")
    set_slider(panel, "Images", 4)
    open_advanced(panel)
    set_slider(panel, "Steps", 3)
    page.locator("#txt2img-previews").get_by_label("Approximate", exact=True).check()
    before = saved_pngs(running_app.outputs)
    page.locator("#txt2img-generate").click()
    wait_for_saved(page, running_app.outputs, before)  # the first image finished
    expect(page.locator("#txt2img-gallery")).to_contain_text(re.compile(r"#2 · step \d of 3"))  # a preview
    page.locator("#txt2img-stop").click()
    expect(page.locator("#txt2img-status")).to_have_text("Stopped after 1 of 4 images.")
    stop_pressed.set()
    page.screenshot(path=str(running_app.outputs.parent / "stopped.png"))
    # Stop is no failure: no error badge anywhere on the tab; the grid holds what was finished, alone.
    # (Gradio may still mark the cancelled event's status line "Error": the studio's CSS hides that badge.)
    badges = tab_panel(page, "#txt2img-generate").get_by_text("Error", exact=True)
    expect(badges.filter(visible=True)).to_have_count(0)
    expect(page.locator(GALLERY)).to_have_count(1)
    expect(page.locator("#txt2img-gallery")).not_to_contain_text("step")


def test_a_page_closed_mid_run_stops_it_and_the_history_says_what_was_not_made(
    page: Page, browser, running_app, monkeypatch
) -> None:
    # The second image holds until the server has noticed the page close: on a fast backend the other
    # three would otherwise finish first. Its steps are done, but a closed page stops the run at once: it
    # is not saved, and the third never starts.
    studio, left, ended = running_app.demo.studio, threading.Event(), threading.Event()
    leave, unfinished = studio.runner.runs.left, studio.runner.unfinished
    hold_the_second_image(studio.cache, left, monkeypatch)

    def leaving(session: str):
        try:
            return leave(session)
        finally:
            left.set()

    def noted(run) -> None:
        unfinished(run)
        ended.set()

    monkeypatch.setattr(studio.runner.runs, "left", leaving)
    monkeypatch.setattr(studio.runner, "unfinished", noted)
    panel = tab_panel(page, "#txt2img-generate")
    page.locator("#txt2img-prompt textarea").fill("a lighthouse left behind")
    set_slider(panel, "Images", 4)
    open_advanced(panel)
    set_slider(panel, "Steps", 2)
    before = saved_pngs(running_app.outputs)
    page.locator("#txt2img-generate").click()
    wait_for_saved(page, running_app.outputs, before)  # the first image finished
    page.context.close()
    assert ended.wait(timeout=GENERATE_TIMEOUT_MS / 1000), "the server noticed, and noted the run unfinished"

    again = open_studio(browser, running_app.url)
    again.get_by_role("tab", name="History", exact=True).click()
    note = again.locator("#history-stopped")
    said = "“a lighthouse left behind”: stopped when its page was closed, after 1 of 4."
    expect(note).to_contain_text(said)
    assert len(saved_pngs(running_app.outputs) - before) == 1, "nothing more was made for nobody"
    again.context.close()


def test_use_this_images_seed_puts_the_selected_images_seed_in_the_seed_box(page: Page) -> None:
    make_grid(page, "two lanterns", images=2, seed=70)
    page.locator(GALLERY).nth(1).click()
    expect(page.locator(SELECTED)).to_have_value(re.compile(r"Seed: 71"))
    page.locator("#txt2img-seed input").fill("-1")
    page.locator("#txt2img-use-seed").click()
    expect(page.locator("#txt2img-seed input")).to_have_value("71")


def test_reroll_after_a_vary_says_it_runs_the_vary_again(page: Page) -> None:
    make_grid(page, "a teapot")
    expect(page.locator("#txt2img-reroll")).to_have_text("Reroll")
    page.locator("#txt2img-vary-subtle").click()
    expect(page.locator("#txt2img-reroll")).to_have_text("Reroll (Vary Subtle)", timeout=GENERATE_TIMEOUT_MS)


def test_send_to_under_an_empty_grid_says_what_to_do(page: Page) -> None:
    page.locator("#txt2img-send-img2img").click()
    expect(toast(page, "Make an image first, then pick one in the results")).to_be_visible()
    expect(page.get_by_role("tab", name="Text to Image", exact=True)).to_have_attribute(
        "aria-selected", "true"
    )


def test_png_info_clears_what_it_held_when_a_png_carries_nothing(page: Page, tmp_path) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters", "a castle in fog\nSteps: 7, Sampler: Euler a, CFG scale: 4.5, Seed: 42, Size: 64x64"
    )
    ours, plain = tmp_path / "with-parameters.png", tmp_path / "holiday.png"
    Image.new("RGB", (32, 32), "gray").save(ours, pnginfo=info)
    Image.new("RGB", (32, 32), "teal").save(plain)

    page.get_by_role("tab", name="PNG Info", exact=True).click()
    upload = page.locator("#png-info-image input[type=file]")
    upload.set_input_files(str(ours))
    expect(page.locator("#png-info-text textarea")).to_have_value(re.compile(r"\na castle in fog\n"))
    page.locator("#png-info-image button[aria-label='Remove Image']").click()
    page.locator("#png-info-image input[type=file]").set_input_files(str(plain))
    expect(page.locator("#png-info-note")).to_contain_text("carries no generation parameters")
    expect(page.locator("#png-info-text textarea")).to_have_value("")
    expect(page.get_by_test_id("toast-body")).to_have_count(0)  # a calm note, no red error

    page.locator("#png-info-send-txt2img").click()
    expect(toast(page, "Drop a PNG that carries parameters first")).to_be_visible()
    expect(page.locator("#txt2img-prompt textarea")).not_to_have_value("a castle in fog")


def test_a_fourth_style_preview_says_three_is_the_limit(page: Page) -> None:
    page.get_by_role("tab", name="Style Transfer", exact=True).click()
    previews = page.locator("#style-previews button.thumbnail-item")
    chosen = page.locator("#style-neural-styles .token")
    for index in (1, 2):  # the first style is chosen already; each pick lands before the next
        previews.nth(index).click()
        expect(chosen).to_have_count(index + 1)
    previews.nth(3).click()
    expect(toast(page, "Up to 3 styles mix")).to_be_visible()
    expect(chosen).to_have_count(3)


def test_dropped_images_are_checked_at_once(page: Page, tmp_path) -> None:
    huge, not_a_picture = tmp_path / "huge.png", tmp_path / "notes.png"
    Image.new("RGB", (3000, 3000), "white").save(huge)  # the test studio takes up to 2048 pixels a side
    not_a_picture.write_text("shopping list: eggs, milk")
    page.get_by_role("tab", name="Image to Image", exact=True).click()
    page.locator("#img2img-image input[type=file]").set_input_files(str(huge))
    expect(toast(page, "huge.png is 3000×3000; this studio takes up to 2048 pixels")).to_be_visible()
    expect(page.locator("#img2img-image img")).to_have_count(0)
    page.get_by_role("tab", name="Upscale", exact=True).click()
    page.locator("#upscale-image input[type=file]").set_input_files(str(not_a_picture))
    expect(toast(page, "notes.png could not be read as an image")).to_be_visible()


def test_the_header_says_the_chosen_model_is_ready(page: Page) -> None:
    expect(page.locator("#model-status")).to_contain_text("is ready", timeout=GENERATE_TIMEOUT_MS)


def text_lines(element) -> int:
    """How many lines an element's text is laid out on."""
    return element.evaluate(
        """(element) => { const range = document.createRange(); range.selectNodeContents(element);
            return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size; }"""
    )


def box(page: Page, selector: str) -> dict:
    found = page.locator(selector).bounding_box()
    assert found, selector
    return found


def test_the_layout_keeps_rows_and_labels_on_one_line(page: Page) -> None:
    row = ["#txt2img-generate", "#txt2img-reroll", "#txt2img-stop"]
    # A loading page may still be laying the row out: until the three share a top, or the wait fails.
    tops = "(ids) => new Set(ids.map((id) => document.querySelector(id).getBoundingClientRect().top))"
    page.wait_for_function(f"(ids) => ({tops})(ids).size === 1", arg=row)
    open_advanced(tab_panel(page, "#txt2img-generate"))
    assert text_lines(page.locator("#txt2img-random-seed")) == 1, '"Random seed" on one line'

    page.get_by_role("tab", name="Image to Image", exact=True).click()
    prompt = box(page, "#img2img-prompt")
    for mode, button in (("Re-imagine", "#img2img-generate"), ("Inpaint", "#inpaint-generate"),
                         ("Zoom out / Pan", "#outpaint-generate"), ("Edit", "#edit-generate")):  # fmt: skip
        page.get_by_role("tab", name=mode, exact=True).click()
        assert prompt["y"] < box(page, button)["y"], f"the prompt comes before {mode}'s button"

    page.get_by_role("tab", name="Style Transfer", exact=True).click()
    captions = page.locator("#style-previews .caption-label")
    expect(captions.first).to_be_visible()
    cut = captions.evaluate_all("(labels) => labels.filter((l) => l.scrollWidth > l.clientWidth + 1).length")
    assert cut == 0, "every style's whole name shows"
    page.locator("#style-previews button.thumbnail-item", has_text="Pastel Stained Glass").click()  # long
    label = page.locator("#style-weight-2 [data-testid='block-info']")
    expect(label).to_have_text("Weight of Pastel Stained Glass")
    assert text_lines(label) == 1, "a weight slider's label on one line"


def test_a_broken_model_file_is_shown_in_the_page(browser, tmp_path) -> None:
    from tests.conftest import launch_app, studio_settings

    broken = tmp_path / "my-model.safetensors"
    broken.write_bytes(b"not a checkpoint at all")
    running = launch_app(studio_settings(broken, tmp_path / "out"))
    try:
        page = browser.new_page()
        page.goto(running.url)
        expect(page.locator("#model-status")).to_contain_text(
            "my-model.safetensors could not be read as a .safetensors checkpoint", timeout=GENERATE_TIMEOUT_MS
        )
        page.close()
    finally:
        running.demo.close()
