"""Official upscaler weights fetched when first chosen, from a local HTTP server standing in for the web."""

import dataclasses
import functools
import http.server
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image
from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

from pipelines.upscale import UpscalePipeline, UpscaleRequest
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import ModelUnavailable
from studio.core.presets import UpscalerDownload
from studio.core.requests import parse_request


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """A folder served over HTTP on a free port, counting requests per file."""
    folder = tmp_path_factory.mktemp("web")
    torch.manual_seed(0)
    model = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)  # saved as Real-ESRGAN's releases are
    torch.save({"params": model.state_dict()}, folder / "tiny-compact.pth")
    (folder / "not-a-model.pth").write_bytes(b"these bytes are not weights")
    hits: dict[str, int] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the base class's name)
            hits[self.path] = hits.get(self.path, 0) + 1
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


def pipeline_with(presets, upscalers: Path, url: str, *, offline: bool = False) -> UpscalePipeline:
    downloads = {
        name: UpscalerDownload(name=name, url=f"{url}/{served}")
        for name, served in (("tiny-compact.pth", "tiny-compact.pth"), ("broken.pth", "not-a-model.pth"),
                             ("missing.pth", "nowhere.pth"))
    }  # fmt: skip
    presets = dataclasses.replace(presets, upscaler_downloads=downloads)
    return UpscalePipeline(
        ModelCache(resolve_device("cpu"), offline=offline), presets, upscalers_dir=upscalers
    )


def upscale(pipeline: UpscalePipeline, upscaler: str, progress=lambda done, total: None) -> Image.Image:
    request = parse_request(
        UpscaleRequest, {"image": Image.new("RGB", (24, 16), "teal"), "upscaler": upscaler, "scale": 2}
    )
    return pipeline(request, progress=progress)[0].image


def test_official_weights_download_once_and_then_work_like_any_file(presets, tmp_path, web):
    url, hits = web
    pipeline = pipeline_with(presets, tmp_path, url)
    assert "tiny-compact.pth" in pipeline.upscalers.names()
    reported = []
    assert upscale(pipeline, "tiny-compact.pth", lambda done, total: reported.append((done, total))).size == (
        48,
        32,
    )
    size = (tmp_path / "tiny-compact.pth").stat().st_size
    assert (size, size) in reported, "byte progress reaches the whole file"
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-compact.pth"]
    assert "tiny-compact.pth" not in pipeline.upscalers.downloadable()
    upscale(pipeline, "tiny-compact.pth")
    assert hits["/tiny-compact.pth"] == 1, "downloaded once"


def test_a_download_that_is_not_a_model_is_refused_and_not_kept(presets, tmp_path, web):
    pipeline = pipeline_with(presets, tmp_path, web[0])
    with pytest.raises(ModelUnavailable, match="not-a-model.pth is not a working upscaler"):
        upscale(pipeline, "broken.pth")
    with pytest.raises(ModelUnavailable, match=r"Could not download missing.pth from .*nowhere.pth"):
        upscale(pipeline, "missing.pth")
    assert list(tmp_path.iterdir()) == [], "nothing half-downloaded is left to look like a model"


def test_offline_says_where_to_get_the_file_and_where_to_put_it(presets, tmp_path, web):
    pipeline = pipeline_with(presets, tmp_path, web[0], offline=True)
    with pytest.raises(
        ModelUnavailable, match=rf"offline\. Download it from {web[0]}/tiny-compact.pth and put it in"
    ):
        upscale(pipeline, "tiny-compact.pth")
