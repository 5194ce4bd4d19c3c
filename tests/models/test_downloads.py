"""Model downloads report their bytes to whoever started them (a local stand-in for the hub)."""

import threading

import huggingface_hub
import pytest
from huggingface_hub import snapshot_download

from studio.core.downloads import downloads_reported_to
from studio.core.models import _REACHABILITY, hub_reachable
from tests.conftest import free_port
from tests.fake_hub import serve_hub


@pytest.fixture
def online(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def folder_bytes(folder) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def test_a_hub_download_reports_its_bytes_to_the_listener_of_the_thread_that_started_it(
    online, tiny_sd, tmp_path
):
    reports, other_threads = [], set()

    def listener(done: int, total: int) -> None:
        reports.append((done, total))
        other_threads.add(threading.current_thread() is not threading.main_thread())

    with serve_hub({"studio-test/tiny-sd": tiny_sd}) as endpoint:
        with downloads_reported_to(listener):
            snapshot_download("studio-test/tiny-sd", endpoint=endpoint, cache_dir=tmp_path / "a")
        assert reports[-1] == (folder_bytes(tiny_sd), folder_bytes(tiny_sd)), "every byte, against the total"
        assert all(done <= total for done, total in reports)
        assert [done for done, _ in reports] == sorted(done for done, _ in reports)
        assert other_threads == {True}, "files download on worker threads, and still reach the listener"

        seen = len(reports)
        snapshot_download("studio-test/tiny-sd", endpoint=endpoint, cache_dir=tmp_path / "b")
        assert len(reports) == seen, "a download outside the block reports to nobody"


def test_the_hub_probe_follows_the_endpoints_port(monkeypatch, tiny_sd):
    with serve_hub({"studio-test/tiny-sd": tiny_sd}) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        assert hub_reachable()
    _REACHABILITY.clear()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    assert not hub_reachable(timeout=1)
    _REACHABILITY.clear()
