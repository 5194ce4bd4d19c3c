"""A new tab is a pipeline, a tab module and one entry in app.py's TABS: here one that answers with text."""

import pytest
from gradio_client import Client

import app
from tests import example_tab
from tests.conftest import studio_settings

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def client(tiny_sd, tmp_path_factory):
    settings = studio_settings(tiny_sd, tmp_path_factory.mktemp("out"))
    demo = app.create_app(settings, tabs=(*app.TABS, example_tab))
    options = app.launch_options(demo)
    options.update(prevent_thread_lock=True, quiet=True)
    demo.launch(**options)
    yield Client(f"http://127.0.0.1:{settings.port}/", verbose=False)
    demo.close()


def test_a_tab_that_answers_with_text_runs_through_the_same_runner(client):
    assert client.predict(text="hello", times=2, api_name="/shout") == "HELLO HELLO"
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/shout"]
    assert [(p["parameter_name"], p["parameter_default"]) for p in endpoint["parameters"]] == [
        ("text", ""),
        ("times", 1),
    ]
    assert client.predict(text="quiet", api_name="/shout") == "QUIET", "left out: the request's default"


def test_its_bad_requests_get_the_runners_plain_messages(client):
    with pytest.raises(Exception, match="Text is too long: at most 40 characters"):
        client.predict(text="x" * 41, api_name="/shout")
    assert "/txt2img" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
