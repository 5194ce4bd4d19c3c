"""On a Hugging Face Space (SYSTEM=spaces, SPACE_ID set, as Spaces starts the app) the page is opened with the
Space's sign-in token (`__sign`) in its address: the copied link leaves the token out, and reopens the grid
and its settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import RunningApp, launch_app, studio_settings
from tests.e2e.helpers import TXT2IMG_GALLERY, open_studio, wait_for_results
from tests.e2e.test_deep_link_browser import copied_link

pytestmark = [
    pytest.mark.e2e,
    # On a Space Gradio also starts its hot-reload watcher, which needs the `spaces` package only Spaces has
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]


@pytest.fixture(scope="module")
def on_a_space(tiny_sd, tiny_presets_dir, tmp_path_factory) -> Iterator[RunningApp]:
    settings = studio_settings(tiny_sd, tmp_path_factory.mktemp("outputs"), presets_dir=tiny_presets_dir)
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("SYSTEM", "spaces")
        environment.setenv("SPACE_ID", "someone/image-studio")
        studio = launch_app(settings)
    yield studio
    studio.demo.close()


def test_on_a_space_the_link_leaves_out_the_sign_in_token_and_reopens_the_grid(
    browser: Browser, on_a_space: RunningApp
) -> None:
    assert on_a_space.demo.space_id == "someone/image-studio", "Gradio took the studio for a Space"
    page = open_studio(browser, f"{on_a_space.url}?__sign=token-of-the-visitor")
    try:
        page.locator("#txt2img-prompt textarea").fill("a kite over the dunes")
        page.locator("#txt2img-generate").click()
        wait_for_results(page, TXT2IMG_GALLERY, "txt2img")
        link = copied_link(page)
        assert "__sign" not in link and "token-of-the-visitor" not in link, link

        again = page.context.new_page()
        again.goto(link)
        wait_for_results(again, TXT2IMG_GALLERY, "txt2img")
        expect(again.locator("#txt2img-prompt textarea")).to_have_value("a kite over the dunes")
    finally:
        page.context.close()
