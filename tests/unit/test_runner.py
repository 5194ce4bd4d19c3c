"""The job runner: batches run a prompt per line in turn, Stop ends the whole batch, and a task runs in a
worker thread so its previews reach the page while it denoises."""

import threading
import time
from collections.abc import Iterator

import pytest
from PIL import Image
from pydantic import Field

from pipelines.parts.previews import PreviewImage
from pipelines.task import Task
from studio.core.errors import RunCancelled
from studio.core.requests import Request
from studio.ui.runner import Job, JobRunner, Run, Turns, in_worker


class EchoRequest(Request):
    prompt: str = ""
    num_images: int = Field(2, ge=1, le=4)
    seed: int = -1


class Echo(Task):
    """A task that answers each request with its prompt, once per image, obeying Stop between them."""

    task = "echo"
    request_type = EchoRequest

    def __init__(self) -> None:  # it needs no models
        self.prompts: list[str] = []

    def generate(self, request, progress=None, is_cancelled=lambda: False, preview=None) -> Iterator[str]:
        self.prompts.append(request.prompt)
        for index in range(request.num_images):
            if is_cancelled():
                raise RunCancelled()
            yield f"{request.prompt} #{index + 1}"


def progress(*args, **kwargs) -> None:
    return None


def test_a_batch_runs_each_prompt_in_turn():
    runner, echo = JobRunner(), Echo()
    runner.add("echo", echo)
    job = Job("echo", {"num_images": 1}, prompts=("a fox", "a kite", "a boat"))
    assert list(runner.run(job, None, progress)) == ["a fox #1", "a kite #1", "a boat #1"]
    assert job.rerolled().prompts == job.prompts and job.rerolled().values["seed"] == -1


def test_stop_ends_the_whole_batch_and_says_how_far_it_got():
    runner, echo = JobRunner(), Echo()
    runner.add("echo", echo)
    results = runner.run(Job("echo", {}, prompts=("a fox", "a kite", "a boat")), None, progress)
    assert next(results) == "a fox #1"
    run = runner.runs.stop("api")  # the session's Stop button, between images
    assert list(results) == [], "neither the rest of this prompt nor the next ones run"
    assert echo.prompts == ["a fox"]
    assert (run.made, run.total, run.stopped_message()) == (1, 6, "Stopped after 1 of 6 images.")


class Sketcher(Echo):
    """Echo that shows a preview on its way to each image, as a denoising pipeline does, and waits until
    it has been handed over (so it is not dropped as out of date)."""

    shows_previews = True

    def __init__(self) -> None:
        super().__init__()
        self.preview_seen = threading.Event()

    def generate(self, request, progress=None, is_cancelled=lambda: False, preview=None) -> Iterator[str]:
        for index in range(request.num_images):
            if is_cancelled():
                raise RunCancelled()
            preview(PreviewImage(Image.new("RGB", (8, 8)), index, 1, 2))
            self.preview_seen.wait(timeout=10)
            self.preview_seen.clear()
            yield f"{request.prompt} #{index + 1}"


def test_previews_do_not_count_as_images_made():
    runner, sketcher = JobRunner(), Sketcher()
    runner.add("sketch", sketcher)
    results = runner.run(Job("sketch", {"prompt": "a fox", "num_images": 4}), None, progress)
    assert isinstance(next(results), PreviewImage)
    sketcher.preview_seen.set()
    assert next(results) == "a fox #1"
    run = runner.runs.stop("api")
    list(results)
    assert run.stopped_message() == "Stopped after 1 of 4 images."


def test_a_bad_line_refuses_the_batch_before_anything_runs():
    import pytest
    from gradio import Error

    runner, echo = JobRunner(max_images=1), Echo()
    runner.add("echo", echo)
    with pytest.raises(Error, match=r"Images \(num_images\) must be at most 1 on this studio"):
        list(runner.run(Job("echo", {"num_images": 2}, prompts=("a fox", "a kite")), None, progress))
    assert echo.prompts == []


def preview(step: int) -> PreviewImage:
    return PreviewImage(Image.new("RGB", (8, 8)), 0, step, 10)


def test_the_worker_hands_over_results_in_order_with_only_the_latest_of_waiting_previews():
    def results(send):
        for step in (1, 2, 3):  # sent together, before anything is read: only step 3 is still news
            send(preview(step))
        time.sleep(0.2)
        yield "image 1"
        yield "image 2"

    events = list(in_worker(results, Run(Job("echo", {})), progress))
    assert events[-2:] == ["image 1", "image 2"]
    assert [e.step for e in events[:-2]][-1:] == [3], "the latest preview, before the image it leads to"


def test_the_worker_makes_the_next_result_only_when_asked_for_it():
    made = []

    def results(send):
        for index in range(3):
            made.append(index)
            yield index

    stream = in_worker(results, Run(Job("echo", {})), progress)
    assert next(stream) == 0
    time.sleep(0.2)
    assert made == [0], "nothing ran ahead of the caller"
    assert list(stream) == [1, 2]


def test_a_failure_in_the_worker_is_raised_to_the_caller():
    def results(send):
        yield "image 1"
        raise ValueError("the model broke")

    stream = in_worker(results, Run(Job("echo", {})), progress)
    assert next(stream) == "image 1"
    with pytest.raises(ValueError, match="the model broke"):
        next(stream)


def test_closing_the_stream_stops_the_task_at_its_next_step():
    run, steps = Run(Job("echo", {})), []
    stop = run.stop

    def results(send):
        while not stop.is_set():  # a task polling Stop between steps, as the step reporter does
            steps.append(1)
            send(preview(len(steps)))
            time.sleep(0.01)
        raise RunCancelled()
        yield  # a generator

    stream = in_worker(results, run, progress)
    next(stream)
    stream.close()
    assert stop.wait(timeout=2), "Stop was set for the task"


def test_a_finished_task_still_winding_down_does_not_stop_the_rest_of_the_run():
    """A batch runs a worker per prompt with the run's one Stop flag: a worker that is still closing its
    stream when the last result has been read must not set it."""
    run = Run(Job("echo", {}))

    class SlowToClose:
        def __init__(self) -> None:
            self.items = iter(["image 1"])

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.items)

        def close(self) -> None:
            time.sleep(0.3)  # the models' lease ending, say, after the last result is out

    assert list(in_worker(lambda send: SlowToClose(), run, progress)) == ["image 1"]
    assert not run.stop.is_set()


class Holder(Echo):
    """Echo whose models (a lease) are held while it runs and let go when its stream closes."""

    def __init__(self) -> None:
        super().__init__()
        self.let_go = threading.Event()

    def generate(self, request, progress=None, is_cancelled=lambda: False, preview=None) -> Iterator[str]:
        try:
            yield from super().generate(request, progress, is_cancelled, preview)
        finally:
            self.let_go.set()


def test_a_visitor_who_left_mid_run_holds_nothing_and_their_queued_runs_never_start():
    runner, holder, unfinished = JobRunner(), Holder(), []
    runner.add("echo", holder)
    runner.unfinished = unfinished.append
    abandoned = runner.run(Job("echo", {"prompt": "a fox", "num_images": 4}), None, progress)
    assert next(abandoned) == "a fox #1"  # the page took one image, then closed: nobody asks for more
    runner.visitor_left("api")
    assert holder.let_go.wait(timeout=10), "the task stops at its next step and lets its models go"
    assert list(abandoned) == [], "the page's event ends with the run"
    assert list(runner.run(Job("echo", {"prompt": "a kite"}), None, progress)) == []
    assert holder.prompts == ["a fox"], "a run queued before the visitor left never starts"
    said = [(run.job.values["prompt"], run.made, run.total) for run in unfinished]
    assert said == [("a fox", 1, 4), ("a kite", 0, 2)], "each unfinished run is told, with how far it got"
    other = JobRunner()
    other.add("echo", Echo())
    assert list(other.run(Job("echo", {"prompt": "a boat", "num_images": 1}), None, progress)) == [
        "a boat #1"
    ]


def test_a_visitor_who_left_after_their_run_finished_leaves_nothing_unfinished():
    runner, unfinished = JobRunner(), []
    runner.add("echo", Echo())
    runner.unfinished = unfinished.append
    assert len(list(runner.run(Job("echo", {"prompt": "a fox"}), None, progress))) == 2
    runner.visitor_left("api")
    assert unfinished == []


def test_turns_serve_jobs_one_at_a_time_in_the_order_they_came():
    turns, order, waited = Turns(), [], []
    first_holds, release_first = threading.Event(), threading.Event()

    def first() -> None:
        with turns.taken(lambda ahead: waited.append("first"), lambda: False):
            first_holds.set()
            release_first.wait()
            order.append("first")

    def later(name: str, queued: threading.Event) -> None:
        with turns.taken(lambda ahead: queued.set(), lambda: False) as ours:
            assert ours
            order.append(name)

    holder = threading.Thread(target=first)
    holder.start()
    first_holds.wait()
    others = []
    for name in ("second", "third"):  # each queued before the next starts: the order they came in
        queued = threading.Event()
        others.append(threading.Thread(target=later, args=(name, queued)))
        others[-1].start()
        assert queued.wait(5), f"{name} was told it waits"
    release_first.set()
    for thread in (holder, *others):
        thread.join(5)
    assert order == ["first", "second", "third"]
    assert waited == [], "the first job found the turn free"


def test_a_job_stopped_while_it_waits_gives_up_its_turn_and_the_next_one_runs():
    turns, stop, order = Turns(), threading.Event(), []
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, bool] = {}

    def holder() -> None:
        with turns.taken(lambda ahead: None, lambda: False):
            holding.set()
            release.wait()

    def stopped_job(queued: threading.Event) -> None:
        with turns.taken(lambda ahead: queued.set(), stop.is_set) as ours:
            outcome["stopped"] = ours

    def next_job(queued: threading.Event) -> None:
        with turns.taken(lambda ahead: queued.set(), lambda: False) as ours:
            outcome["next"] = ours
            order.append("next")

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    holding.wait()
    for job in (stopped_job, next_job):
        queued = threading.Event()
        threads.append(threading.Thread(target=job, args=(queued,)))
        threads[-1].start()
        queued.wait(5)
    stop.set()
    turns.wake()
    threads[1].join(5)
    assert outcome == {"stopped": False}, "it gave up at once, without waiting for the holder"
    release.set()
    threads[2].join(5)
    assert outcome["next"] is True and order == ["next"], "the abandoned ticket does not block the queue"
