"""Behind a reverse proxy that serves the studio under /studio (launched with --root-path /studio), the page
works and its copied link points at the proxy's address, under the prefix, and reopens the same grid."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, expect
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import RunningApp, free_port, launch_app, studio_settings
from tests.e2e.helpers import TXT2IMG_GALLERY, open_studio, wait_for_results
from tests.e2e.test_deep_link_browser import copied_link

pytestmark = pytest.mark.e2e

PREFIX = "/studio"
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection"}


def prefix_proxy(upstream: str) -> Starlette:
    """What nginx does for a studio under a path: strip the prefix, forward, stream the answer back (the
    queue's events arrive as a stream), and say the public host in X-Forwarded-Host."""
    client = httpx.AsyncClient(base_url=upstream, timeout=None)

    async def forward(request: Request) -> Response:
        if not request.url.path.startswith(PREFIX):
            return Response("not under the prefix", status_code=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update({"x-forwarded-host": request.url.netloc, "x-forwarded-proto": "http"})
        sent = client.build_request(
            request.method,
            request.url.path[len(PREFIX) :] or "/",
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
        answer = await client.send(sent, stream=True)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


@pytest.fixture(scope="module")
def proxied(tiny_sd, tiny_presets_dir, tmp_path_factory) -> Iterator[tuple[RunningApp, str]]:
    settings = studio_settings(
        tiny_sd, tmp_path_factory.mktemp("outputs"), presets_dir=tiny_presets_dir, root_path=PREFIX
    )
    studio = launch_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(prefix_proxy(studio.url), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield studio, f"http://127.0.0.1:{port}{PREFIX}/"
    server.should_exit = True
    thread.join(timeout=10)
    studio.demo.close()


def test_behind_a_prefix_the_page_runs_and_its_link_reopens_the_grid(browser: Browser, proxied) -> None:
    _, public_url = proxied
    page = open_studio(browser, public_url)
    try:
        page.locator("#txt2img-prompt textarea").fill("a lantern in the fog")
        page.locator("#txt2img-generate").click()
        wait_for_results(page, TXT2IMG_GALLERY, "txt2img")
        sources = page.evaluate(f"[...document.querySelectorAll('{TXT2IMG_GALLERY}')].map((i) => i.src)")
        assert all(source.startswith(public_url) for source in sources), sources
        link = copied_link(page)
        assert link.startswith(public_url), link

        again = page.context.new_page()
        again.goto(link)
        wait_for_results(again, TXT2IMG_GALLERY, "txt2img")
        expect(again.locator("#txt2img-prompt textarea")).to_have_value("a lantern in the fog")
    finally:
        page.context.close()
