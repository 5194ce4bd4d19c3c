"""The history: saving that never overwrites and never lists a folder, and an SQLite index that search and
filters use, rebuilt from the PNGs when it is missing, stale or damaged."""

import os
import time
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from studio.core import history as history_module
from studio.core.history import STOPPED_RUNS, History, StoppedRun
from studio.core.history_index import Query, Viewer
from studio.core.metadata import GenerationParameters, read_parameters

LOCAL = Viewer()


def made(prompt: str = "a fox", **changes) -> GenerationParameters:
    values = dict(task="txt2img", prompt=f"styled {prompt}", negative_prompt="blurry", steps=4,
                  sampler="Euler", guidance_scale=5.0, seed=7, width=64, height=64, model="tiny",
                  user_prompt=prompt)  # fmt: skip
    values.update(changes)
    return GenerationParameters(**values)


def picture(colour: str = "red", size: tuple[int, int] = (64, 64)) -> Image.Image:
    return Image.new("RGB", size, colour)


def paths(page) -> list[str]:
    return [entry.path for entry in page.entries]


def test_saving_never_overwrites_numbers_on_and_continues_after_a_restart(tmp_path):
    history = History(tmp_path)
    first = history.save(picture("red"), made(seed=5))
    second = history.save(picture("blue"), made(seed=5))
    assert first.name == "00001-txt2img-5.png" and second.name == "00002-txt2img-5.png"
    third = History(tmp_path).save(picture("green"), made(seed=9))  # a restarted studio
    assert third.name == "00003-txt2img-9.png"
    with Image.open(first) as image:
        assert image.getpixel((0, 0)) == (255, 0, 0)
    assert read_parameters(third).seed == 9
    assert [p.name for p in sorted(first.parent.iterdir())] == [first.name, second.name, third.name]


def test_the_next_number_needs_no_listing_of_the_folder(tmp_path, monkeypatch):
    History(tmp_path).save(picture(), made())
    restarted = History(tmp_path)

    def no_listing(*args, **kwargs):
        raise AssertionError("a save listed a folder")

    monkeypatch.setattr(Path, "glob", no_listing)
    monkeypatch.setattr(Path, "iterdir", no_listing)
    monkeypatch.setattr(os, "listdir", no_listing)
    monkeypatch.setattr(os, "scandir", no_listing)
    assert restarted.save(picture(), made()).name.startswith("00002-")


def test_a_name_taken_by_another_process_moves_on_to_the_next(tmp_path):
    history = History(tmp_path)
    first = history.save(picture(), made(seed=1))
    (first.parent / "00002-txt2img-1.png").write_bytes(b"written by another studio process")
    assert history.save(picture(), made(seed=1)).name == "00003-txt2img-1.png"
    assert (first.parent / "00002-txt2img-1.png").read_bytes() == b"written by another studio process"


def test_a_save_interrupted_halfway_leaves_no_result_under_a_results_name(tmp_path, monkeypatch):
    history = History(tmp_path)
    history.save(picture(), made())
    original_save = Image.Image.save

    def killed_halfway(self, fp, *args, **kwargs):
        original_save(self, fp, *args, **kwargs)
        fp.truncate(20)  # what a process killed while writing leaves behind
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        history.save(picture("blue"), made())
    monkeypatch.undo()
    folder = next(tmp_path.glob("20*"))
    assert [p.name for p in folder.glob("*.png") if not p.name.startswith(".")] == ["00001-txt2img-7.png"]
    assert history.save(picture(), made()).name == "00002-txt2img-7.png"
    assert history.index.sync() == {"added": 0, "changed": 0, "removed": 0}, "nothing half-written is listed"


def test_search_filters_and_pages_newest_first(tmp_path):
    history = History(tmp_path)
    for index in range(30):
        prompt = "a red fox in snow" if index % 3 == 0 else f"a lighthouse number {index}"
        task = "img2img" if index % 5 == 0 else "txt2img"
        size = (96, 64) if index % 2 else (64, 64)
        history.save(picture(size=size), made(prompt, task=task, seed=index, width=size[0], height=size[1]))
        time.sleep(0.002)  # distinct modification times
    index = history.index
    newest = index.search(Query(per_page=10), LOCAL)
    assert (newest.total, newest.pages, len(newest.entries)) == (30, 3, 10)
    assert [e.seed for e in newest.entries] == list(range(29, 19, -1)), "newest first"
    assert [e.seed for e in index.search(Query(per_page=10, page=3), LOCAL).entries] == list(range(9, -1, -1))
    foxes = index.search(Query(text="FOX snow"), LOCAL)
    assert foxes.total == 10 and all("fox" in e.prompt for e in foxes.entries), "every word, any case"
    assert index.search(Query(text="fox lighthouse"), LOCAL).total == 0
    assert index.search(Query(text="50%"), LOCAL).total == 0, "% is a letter, not a wildcard"
    assert index.search(Query(task="img2img"), LOCAL).total == 6
    assert index.search(Query(size="96x64"), LOCAL).total == 15
    today = time.strftime("%Y-%m-%d")
    assert index.search(Query(day=today, model="tiny", task="txt2img", size="64x64"), LOCAL).total == 12
    choices = index.choices(LOCAL)
    assert choices == {
        "task": ["img2img", "txt2img"],
        "model": ["tiny"],
        "day": [today],
        "size": ["64x64", "96x64"],
    }


def test_each_owner_sees_their_own_and_the_local_user_sees_all(tmp_path):
    history = History(tmp_path)
    history.save(picture(), made("bo's cat"), owner="user:bo")
    history.save(picture(), made("ann's dog"), owner="user:ann")
    history.save(picture(), made("a visitor's bird"), owner="session:abc")
    history.save(picture(), made("the local user's boat"))
    bo = Viewer("user:bo", sees_all=False)
    assert [e.prompt for e in history.index.search(Query(), bo).entries] == ["bo's cat"]
    assert history.index.search(Query(), Viewer("session:abc", sees_all=False)).total == 1
    assert history.index.search(Query(), LOCAL).total == 4
    assert (tmp_path / "users" / "bo").is_dir(), "a signed-in user's results live in their own folder"
    (tmp_path / ".history.sqlite").unlink()
    rebuilt = History(tmp_path)
    rebuilt.index.sync()
    [bos] = rebuilt.index.search(Query(), bo).entries
    assert bos.prompt == "bo's cat", "who made it survives a rebuild"
    assert rebuilt.index.entry(bos.path, Viewer("user:ann", sees_all=False)) is None, "not by its path either"
    assert rebuilt.index.entry(bos.path, bo).prompt == "bo's cat"


def test_delete_moves_to_the_trash_restore_brings_back_and_only_emptying_destroys(tmp_path):
    history = History(tmp_path)
    kept = history.save(picture(), made("kept"))
    gone = history.save(picture(), made("thrown away"))
    relative = gone.relative_to(tmp_path).as_posix()
    history.trash(relative)
    assert not gone.exists() and (tmp_path / ".trash" / relative).is_file()
    assert [e.prompt for e in history.index.search(Query(), LOCAL).entries] == ["kept"]
    assert [e.prompt for e in history.index.search(Query(trashed=True), LOCAL).entries] == ["thrown away"]
    history.restore(relative)
    assert gone.is_file() and history.index.search(Query(), LOCAL).total == 2
    history.trash(relative)
    assert history.empty_trash(Viewer("user:someone-else", sees_all=False)) == 0, "not theirs to destroy"
    assert history.empty_trash(LOCAL) == 1 and not (tmp_path / ".trash" / relative).exists()
    assert kept.is_file() and history.index.search(Query(trashed=True), LOCAL).total == 0


def test_the_index_is_rebuilt_when_missing_or_damaged_and_synced_when_stale(tmp_path):
    history = History(tmp_path)
    for seed in range(5):
        history.save(picture(), made(seed=seed))
    (tmp_path / ".history.sqlite").write_bytes(b"this is not a database at all" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f".history.sqlite{suffix}").unlink(missing_ok=True)
    damaged = History(tmp_path)
    steps = []
    assert damaged.index.sync(lambda done, total: steps.append((done, total))) == {
        "added": 5, "changed": 0, "removed": 0,
    }  # fmt: skip
    assert steps[-1] == (5, 5) and damaged.index.search(Query(), LOCAL).total == 5
    assert list(tmp_path.glob(".history.sqlite.damaged-*")), "the damaged copy is set aside, not destroyed"

    # Stale: a file written by another studio, one copied in, one deleted by hand, one damaged.
    folder = next(tmp_path.glob("20*"))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 99, Size: 64x64")
    Image.new("RGB", (64, 64)).save(folder / "other-studio.png", pnginfo=info)
    (folder / "00003-txt2img-2.png").unlink()
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    assert damaged.index.sync() == {"added": 2, "changed": 0, "removed": 1}
    listed = {e.path.rsplit("/", 1)[-1]: e for e in damaged.index.search(Query(), LOCAL).entries}
    assert listed["other-studio.png"].task == "other" and listed["other-studio.png"].seed == 99
    assert listed["broken.png"].task == "none", "a damaged file is listed, it breaks nothing"


def test_thumbnails_are_small_and_made_for_files_that_have_none(tmp_path):
    history = History(tmp_path)
    saved = history.save(picture(size=(1024, 512)), made(width=1024, height=512))
    relative = saved.relative_to(tmp_path).as_posix()
    with Image.open(history.thumbnail_path(relative)) as thumb:
        assert thumb.size == (256, 128) and thumb.format == "WEBP"
    history.thumbnail_path(relative).unlink()
    with Image.open(history.thumbnail(relative)) as thumb:
        assert thumb.size == (256, 128)


def test_runs_a_closed_page_left_unfinished_are_noted_for_their_owner_newest_first(tmp_path):
    history = History(tmp_path)
    history.note_stopped(StoppedRun("txt2img", "a fox", 1, 4, owner="session:a"))
    history.note_stopped(StoppedRun("img2img", "a kite", 0, 2, owner="session:b"))
    with open(tmp_path / STOPPED_RUNS, "a") as notes:
        notes.write('{"task": "txt2img", "pro')  # cut short by a full disk: the others still count
    history.note_stopped(StoppedRun("Vary (Subtle)", "a boat", 2, 3, owner="session:a"))

    mine = history.stopped_runs(Viewer("session:a", sees_all=False))
    assert [(run.task, run.prompt, run.made, run.total) for run in mine] == [
        ("Vary (Subtle)", "a boat", 2, 3),
        ("txt2img", "a fox", 1, 4),
    ]
    assert all(run.when.startswith(time.strftime("%Y-")) for run in mine), "each says when"
    assert [run.prompt for run in history.stopped_runs(Viewer(), limit=2)] == ["a boat", "a kite"]
    assert history.stopped_runs(Viewer("session:c", sees_all=False)) == []
    assert History(tmp_path / "new").stopped_runs(Viewer()) == [], "none noted yet"
    assert history.index.sync() == {"added": 0, "changed": 0, "removed": 0}, "a note is no result"


def test_the_notes_of_stopped_runs_stay_bounded_and_keep_the_newest(tmp_path, monkeypatch):
    monkeypatch.setattr(history_module, "STOPPED_RUNS_KEPT", 5)
    history = History(tmp_path, indexed=False)
    for number in range(11):
        history.note_stopped(StoppedRun("txt2img", f"prompt {number}", 0, 1))
    lines = [line for line in (tmp_path / STOPPED_RUNS).read_text().splitlines() if line.strip()]
    assert len(lines) == 5, "past 10 notes, the newest 5 are kept"
    assert [run.prompt for run in history.stopped_runs(Viewer(), limit=6)] == [
        f"prompt {number}" for number in range(10, 5, -1)
    ]
