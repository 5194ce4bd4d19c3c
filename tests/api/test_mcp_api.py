"""--mcp: every named endpoint is a documented tool for AI agents, called through an MCP client."""

import asyncio

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from studio.core.metadata import read_parameters
from studio.core.settings import load_settings
from tests.conftest import launch_app, studio_settings

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def agent_app(tiny_sd, tmp_path_factory):
    settings = studio_settings(tiny_sd, tmp_path_factory.mktemp("outputs"), mcp=True)
    running = launch_app(settings)
    yield running
    running.demo.close()


def with_session(url: str, work):
    async def session_run():
        tools_at = url + "gradio_api/mcp/"
        async with streamablehttp_client(tools_at) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)

    return asyncio.run(session_run())


def test_the_flag_and_its_variable_turn_it_on(monkeypatch):
    assert load_settings(["--mcp"]).mcp and not load_settings([]).mcp
    monkeypatch.setenv("STUDIO_MCP", "1")
    assert load_settings([]).mcp


def test_every_named_endpoint_is_a_tool_whose_parameters_say_what_they_take(agent_app):
    async def listed(session):
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in with_session(agent_app.url, listed)}
    assert {"txt2img", "img2img", "inpaint", "outpaint", "vary", "style_transfer", "upscale", "history",
            "history_item", "png_info", "memory", "free_memory"} <= set(tools)  # fmt: skip
    txt2img = tools["txt2img"]
    assert txt2img.description.startswith("Make 1 to 4 images from a prompt.")  # from the request's bounds
    properties = txt2img.inputSchema["properties"]
    assert properties["prompt"]["description"] == "what to draw."
    assert properties["guidance_scale"]["description"].endswith("Takes 0 to 30.")
    assert all(properties[name].get("description") for name in properties), "every parameter explained"


def test_an_agent_makes_an_image_with_the_text_to_image_tool(agent_app):
    async def called(session):
        return await session.call_tool("txt2img", {"prompt": "a fox in the snow", "steps": 1, "seed": 5})

    result = with_session(agent_app.url, called)
    assert not result.isError, result.content
    text = " ".join(getattr(part, "text", "") for part in result.content)
    assert "-txt2img-5.png" in text, "the saved PNG, named by its seed"
    saved = list(agent_app.outputs.rglob("*-txt2img-5.png"))
    assert len(saved) == 1
    recorded = read_parameters(saved[0])
    assert (recorded.seed, recorded.user_prompt or recorded.prompt) == (5, "a fox in the snow")
