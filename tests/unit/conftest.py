"""tests/unit is the fast lane: a test here that asked for a model would make it slow, so it is refused
(tests that build or run models live in tests/models/)."""

from __future__ import annotations

import pytest

MODEL_FIXTURES = {
    "tiny_sd", "tiny_sdxl", "tiny_sd_inpaint", "tiny_presets_dir", "tiny_presets", "fast_decoder_presets_dir",
    "fast_decoder_presets", "inpaint_presets", "cache", "each_backend_cache", "running_app",
}  # fmt: skip


def pytest_itemcollected(item: pytest.Item) -> None:
    asked = MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if asked:
        named = ", ".join(sorted(asked))
        raise pytest.UsageError(f"{item.nodeid} asks for {named}: move it to tests/models/")
