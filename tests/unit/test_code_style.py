import shutil
import subprocess

from studio.core.settings import PROJECT_ROOT


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff")
    assert ruff, "ruff is part of the test extra"
    check = subprocess.run([ruff, "check", "."], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    formatted = subprocess.run(
        [ruff, "format", "--check", "."], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout
