"""The HTTP APIs other apps already speak, served beside the page on the same server: AUTOMATIC1111's
`/sdapi/v1` (a1111.py) and OpenAI's Images API under `/v1` (openai_images.py). Both run their requests
through the studio's own job runner (`runs.py`): one job at a time with the page's, the same access rules
and limits, every image saved to the history."""

from __future__ import annotations

from starlette.routing import BaseRoute

from studio.client_apis import a1111, openai_images
from studio.client_apis.runs import ClientRuns
from studio.ui.context import Studio


def routes(studio: Studio) -> list[BaseRoute]:
    """Both APIs' routes, for the server's app (app.py hands them to Gradio's FastAPI app)."""
    runs = ClientRuns(studio)
    return [*a1111.router(studio, runs).routes, *openai_images.router(studio, runs).routes]
