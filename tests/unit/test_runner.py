"""The job runner: batches run a prompt per line in turn, and Stop ends the whole batch."""

from collections.abc import Iterator

from pydantic import Field

from studio.core.errors import RunCancelled
from studio.core.requests import Request
from studio.ui.runner import Job, JobRunner


class EchoRequest(Request):
    prompt: str = ""
    num_images: int = Field(2, ge=1, le=4)
    seed: int = -1


class Echo:
    """A pipeline that answers each request with its prompt, once per image, obeying Stop between them."""

    request_type = EchoRequest

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, request: EchoRequest, progress=None, is_cancelled=lambda: False) -> Iterator[str]:
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


def test_a_bad_line_refuses_the_batch_before_anything_runs():
    import pytest
    from gradio import Error

    runner, echo = JobRunner(max_images=1), Echo()
    runner.add("echo", echo)
    with pytest.raises(Error, match=r"Images \(num_images\) must be at most 1 on this studio"):
        list(runner.run(Job("echo", {"num_images": 2}, prompts=("a fox", "a kite")), None, progress))
    assert echo.prompts == []
