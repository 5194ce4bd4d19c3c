"""Faults in the middle of work: a process killed while saving, an outputs folder that is full or
read-only, damaged files among the results, a model folder deleted while it is loaded."""

import errno
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from gradio_client import Client, handle_file
from PIL import Image

import studio.core.history as history_module
from tests.conftest import launch_app, studio_settings

PROJECT = history_module.Path(__file__).resolve().parents[2]
PARAMETERS = dict(task="txt2img", prompt="noise", negative_prompt="", steps=1, sampler="Euler",
                  guidance_scale=0.0, seed=1, width=8, height=8, model="tiny")  # fmt: skip


def test_a_process_killed_while_saving_leaves_no_truncated_png(tmp_path):
    """Kill a process that saves large PNGs back to back, at several moments: every PNG under a result's
    name opens whole, and what was half written stays hidden from every listing."""
    saver = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(PROJECT)!r})
        import numpy as np
        from PIL import Image
        from studio.core.history import History
        from studio.core.metadata import GenerationParameters
        history = History({str(tmp_path)!r}, dated=False, indexed=False)
        noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1536, 1536, 3), dtype=np.uint8))
        print("ready", flush=True)
        while True:
            history.save(noise, GenerationParameters(**{PARAMETERS!r}))
    """)
    for delay in (0.05, 0.2, 0.35):  # after a save has finished: into the next one, at several points
        saved_before = len(list(tmp_path.glob("[!.]*.png")))
        process = subprocess.Popen([sys.executable, "-c", saver], stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("[!.]*.png"))) == saved_before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
    results = sorted(tmp_path.glob("[!.]*.png"))
    assert len(results) >= 3, "each process finished a save before it was killed"
    for path in results:
        with Image.open(path) as image:
            image.load()  # raises on a truncated file
            assert image.size == (1536, 1536)
    from studio.core.history import History

    listed = History(tmp_path, dated=False).index.sync()
    assert listed["added"] == len(results), "half-written files are not results"


@pytest.fixture(scope="module")
def studio_on_disk(tiny_sd, tiny_presets_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    model = root / "models" / "loaded-then-deleted"
    shutil.copytree(tiny_sd, model)
    settings = studio_settings(tiny_sd, root / "outputs", presets_dir=tiny_presets_dir)
    running = launch_app(settings)
    yield running, Client(running.url, verbose=False), model
    running.demo.close()


@pytest.mark.parametrize(
    ("code", "reason"), [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")]
)
def test_when_the_outputs_folder_cannot_take_results_they_are_still_shown(
    studio_on_disk, monkeypatch, tmp_path, code, reason
):
    running, client, _ = studio_on_disk

    def failing_save(image, path, parameters, *, exclusive=True, extra_chunks=None):
        path.write_bytes(b"\x89PNG half")  # a disk that fills up halfway
        raise OSError(code, reason)

    before = sorted(running.outputs.rglob("*.png"))
    monkeypatch.setattr(history_module, "save_png", failing_save)
    images, parameters = client.predict(prompt="a boat", num_images=2, seed=5, steps=1, api_name="/txt2img")
    assert [p["seed"] for p in parameters] == [5, 6] and len(images) == 2
    for item in images:
        with Image.open(item["image"]) as image:
            assert image.size == (parameters[0]["width"], parameters[0]["height"])
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), "teal").save(photo)
    (before_after, file, text) = client.predict(
        image=handle_file(str(photo)), upscaler="Lanczos (no model)", scale=2, api_name="/upscale"
    )
    assert Image.open(before_after[1]).size == (64, 64) and file is None and "Lanczos" in text
    assert sorted(running.outputs.rglob("*.png")) == before, "nothing half written is left behind"

    monkeypatch.undo()  # the disk has room again: results are saved as before
    client.predict(prompt="a boat", seed=100 + code, steps=1, api_name="/txt2img")
    assert len(sorted(running.outputs.rglob(f"[!.]*-txt2img-{100 + code}.png"))) == 1


def test_the_warning_says_why_in_words_that_name_no_server_folder(tmp_path, monkeypatch):
    from studio.core.errors import ResultNotSaved
    from studio.core.history import History
    from studio.core.metadata import GenerationParameters

    blocked = tmp_path / "outputs"
    blocked.write_text("a file where the outputs folder should be")
    with pytest.raises(ResultNotSaved) as caught:
        History(blocked, indexed=False).save(Image.new("RGB", (8, 8)), GenerationParameters(**PARAMETERS))
    assert str(caught.value).startswith("The result could not be saved in the outputs folder (")
    assert str(tmp_path) not in str(caught.value)


def test_damaged_files_among_the_results_break_nothing_that_lists_them(studio_on_disk):
    running, client, _ = studio_on_disk
    client.predict(prompt="a sound result", seed=3, steps=1, api_name="/txt2img")
    day = next(path.parent for path in running.outputs.rglob("[!.]*-txt2img-3.png"))
    good = next(day.glob("*-txt2img-3.png")).read_bytes()
    (day / "90000-txt2img-1.png").write_bytes(good[: len(good) // 2])  # truncated
    (day / "90001-txt2img-2.png").write_bytes(b"")  # empty
    (day / "90002-txt2img-3.png").write_bytes(b"not a picture at all" * 50)  # garbage
    _, line, listing = client.predict(api_name="/history")
    names = {result["file"].rsplit("/", 1)[-1] for result in listing["results"]}
    assert {"90000-txt2img-1.png", "90001-txt2img-2.png", "90002-txt2img-3.png"} <= names
    assert "a sound result" in {result["prompt"] for result in listing["results"]}
    damaged = next(r["file"] for r in listing["results"] if r["file"].endswith("90002-txt2img-3.png"))
    _, text, fields = client.predict(file=damaged, api_name="/history_item")
    assert (text, fields) == ("This file carries no generation parameters.", {})
    images, _ = client.predict(prompt="still serving", steps=1, api_name="/txt2img")
    assert len(images) == 1


def test_a_model_folder_deleted_while_loaded_gives_a_clear_message_on_the_next_run(studio_on_disk):
    running, client, model = studio_on_disk
    client.predict(prompt="a fox", steps=1, model=str(model), api_name="/txt2img")
    shutil.rmtree(model)
    with pytest.raises(Exception) as caught:
        client.predict(prompt="a fox", steps=1, model=str(model), api_name="/txt2img")
    assert str(caught.value) == f"Model path {model} does not exist or cannot be read."
    images, _ = client.predict(prompt="a fox", steps=1, api_name="/txt2img")
    assert len(images) == 1, "the studio keeps serving its own model"
