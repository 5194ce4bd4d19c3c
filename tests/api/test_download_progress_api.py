"""A hub model used for the first time downloads with its progress shown, then runs (a local stand-in hub).

The studio runs in its own process here: the hub client reads `HF_ENDPOINT` when it is imported.
"""

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client

from studio.core.settings import PROJECT_ROOT
from tests.conftest import free_port
from tests.fake_hub import serve_hub

pytestmark = pytest.mark.api


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the studio exited during start-up"
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the studio did not answer at {url}")


def test_a_hub_model_downloads_on_first_use_with_progress_and_then_runs(tiny_sd: Path, tmp_path: Path):
    repo = "studio-test/tiny-sd"
    with serve_hub({repo: tiny_sd}, seconds_per_mib=4) as endpoint:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf")}
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("STUDIO_OFFLINE", None)
        port = free_port()
        command = [sys.executable, "app.py", "--model", repo, "--device", "cpu", "--port", str(port)]
        command += ["--outputs", str(tmp_path / "outputs")]
        log = open(tmp_path / "studio.log", "w")  # noqa: SIM115 (closed below)
        studio = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_until_up(url, studio)
            job = Client(url, verbose=False).submit(
                prompt="a lighthouse",
                steps=30,  # long enough for the status polls below to see "Denoising"
                seed=9,
                previews="off",  # a preview's update carries no progress, and may be all a poll sees
                api_name="/txt2img",
            )
            shown = []
            while not job.done():
                for unit in job.status().progress_data or []:
                    if unit.desc and (unit.desc, unit.progress) not in shown:
                        shown.append((unit.desc, unit.progress))
                time.sleep(0.05)
            images, parameters = job.result(timeout=60)
        finally:
            studio.terminate()
            studio.wait(timeout=30)
            log.close()

    downloads = [(desc, fraction) for desc, fraction in shown if desc.startswith("Downloading the model")]
    assert len(downloads) >= 3, f"the download was shown as it went: {shown}"
    final, fraction = downloads[-1]
    assert re.fullmatch(r"Downloading the model: (.+) of \1", final) and fraction == 1.0, final
    assert any(0 < fraction < 1 for _, fraction in downloads), "part-way figures, not only the end"
    assert [desc for desc, _ in shown].index(downloads[-1][0]) < [desc for desc, _ in shown].index(
        "Denoising"
    )
    assert parameters[0]["seed"] == 9 and Path(images[0]["image"]).is_file()
    cached = tmp_path / "hf" / "hub" / "models--studio-test--tiny-sd"
    assert (cached / "snapshots").is_dir(), "the model is in the hub cache for next time"
