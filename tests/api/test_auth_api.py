"""With --auth, the studio and its API answer only to a login."""

import pytest
from gradio_client import Client

from tests.conftest import launch_app, studio_settings

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def protected_app(tiny_sd, tmp_path_factory):
    settings = studio_settings(
        tiny_sd,
        tmp_path_factory.mktemp("outputs"),
        auth=(("ann", "s3cret:pass"), ("bo", "other")),
        queue_size=5,
        max_image_side=256,
        max_images=2,
    )
    running = launch_app(settings)
    yield running
    running.demo.close()


def test_the_api_refuses_a_caller_without_credentials(protected_app):
    with pytest.raises(Exception, match="credentials were not provided"):
        Client(protected_app.url, verbose=False).predict(prompt="x", steps=1, api_name="/txt2img")
    with pytest.raises(Exception, match="Could not login"):
        Client(protected_app.url, auth=("ann", "wrong"), verbose=False)


def test_the_api_serves_a_caller_with_credentials(protected_app):
    for user in (("ann", "s3cret:pass"), ("bo", "other")):
        client = Client(protected_app.url, auth=user, verbose=False)
        images, params = client.predict(prompt="a key", seed=3, steps=1, api_name="/txt2img")
        assert len(images) == 1 and params[0]["seed"] == 3


def test_the_queue_has_the_configured_size(protected_app):
    assert protected_app.demo._queue.max_size == 5


def test_server_limits_on_image_size_and_count(protected_app, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    blocks = protected_app.demo.blocks.values()
    sliders = [b for b in blocks if (b.elem_id or "").endswith("-num-images") and b.visible]
    assert len(sliders) == 4 and all(s.maximum == 2 for s in sliders), "the Images sliders follow the limit"
    client = Client(protected_app.url, auth=("bo", "other"), verbose=False)
    with pytest.raises(Exception, match=r"Images \(num_images\) must be at most 2 on this studio \(got 3\)"):
        client.predict(prompt="x", num_images=3, steps=1, api_name="/txt2img")
    wide = tmp_path / "wide.png"
    Image.new("RGB", (300, 40)).save(wide)
    with pytest.raises(Exception, match="^wide.png is 300×40; this studio takes up to 256 pixels"):
        client.predict(image=handle_file(str(wide)), strength=0.5, steps=1, api_name="/img2img")
