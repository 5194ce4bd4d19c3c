"""What the console says when the studio starts: the studio's flags, not Gradio's launch() arguments."""

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.api
APP = Path(__file__).resolve().parents[2] / "app.py"


def start(tiny_sd, port: int, tmp_path) -> subprocess.Popen:
    command = [sys.executable, str(APP), "--model", str(tiny_sd), "--port", str(port), "--offline",
               "--outputs", str(tmp_path / "outputs")]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_started_studio_says_where_it_runs_and_how_to_share_in_its_own_flags(tiny_sd, tmp_path):
    port = free_port()
    studio = start(tiny_sd, port, tmp_path)
    deadline = threading.Timer(120, studio.kill)  # a studio that never says it runs ends the reads
    deadline.start()
    try:
        lines = [studio.stdout.readline(), studio.stdout.readline()]  # waits for the lines themselves
    finally:
        deadline.cancel()
        studio.terminate()
        studio.wait(timeout=30)
    assert lines[0].strip() == f"Running on http://127.0.0.1:{port}/"
    assert "--share" in lines[1] and "share=True" not in lines[1]


def test_a_taken_port_is_one_line_naming_the_flag(tiny_sd, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        studio = start(tiny_sd, port, tmp_path)
        _, errors = studio.communicate(timeout=120)
    assert studio.returncode == 2
    assert errors.strip().splitlines()[-1] == (
        f"error: port {port} is in use; start with --port N, or stop what is using it."
    )
    assert "Traceback" not in errors and "server_port" not in errors
