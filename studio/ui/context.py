"""What every tab is built from: the settings, presets, model cache, history, job runner and send-to wiring.

app.py makes one `Studio` and hands it to each tab's `create_tab`. A tab builds the pipelines it runs
through `Studio.pipeline`, which registers them with the runner (and shares one between tabs that need the
same task: every grid's Vary runs the Image to Image pipeline).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from pipelines.diffusion import GenerationRequest
from pipelines.registry import TASKS
from pipelines.task import Task
from studio.core.access import ModelAccess, RateLimit
from studio.core.cache import ModelCache
from studio.core.devices import resolve_device
from studio.core.errors import InvalidRequest
from studio.core.history import History, StoppedRun
from studio.core.history_index import Viewer
from studio.core.latest_only import LatestOnly
from studio.core.presets import Presets, load_presets
from studio.core.profiles import LOCAL_OWNER, Profiles
from studio.core.requests import Request
from studio.core.settings import Settings
from studio.core.style_codes import StyleCodes
from studio.core.taste import NO_PROFILE
from studio.ui import zerogpu
from studio.ui.common import person_of, session_of
from studio.ui.model_check import ModelCheck
from studio.ui.runner import JobRunner, Run, Turns
from studio.ui.send_to import SendTo


@dataclass(frozen=True)
class TabInfo:
    id: str
    label: str
    takes_images: bool = False  # gets a Send to button under every result grid


@dataclass
class Studio:
    settings: Settings
    presets: Presets
    cache: ModelCache
    history: History
    runner: JobRunner
    send_to: SendTo
    model_check: ModelCheck
    style_codes: StyleCodes  # saved styles (`--sref CODE`), in the styles folder
    profiles: Profiles  # each person's taste profiles (`--p CODE`)
    live_turns: LatestOnly = dataclasses.field(default_factory=LatestOnly)  # whose live frame is made next
    tab_blocks: dict[str, gr.Tab] = dataclasses.field(default_factory=dict)  # by id, as app.py makes them
    loads: list[tuple[Callable, list, list]] = dataclasses.field(default_factory=list)  # app.py's demo.load

    @classmethod
    def from_settings(cls, settings: Settings, tabs: Sequence[TabInfo]) -> Studio:
        presets = load_presets(settings.presets_dir)
        if settings.model:  # requests that name no model (API calls, Vary on a plain image) use --model
            presets = dataclasses.replace(presets, default_model=settings.model)
            if settings.reachable_by_others and Path(settings.model).expanduser().exists():
                presets = presets.named_locally(settings.model)  # visitors see a name, not a server path
        cache = ModelCache.for_machine(
            resolve_device(settings.device, settings.dtype, settings.quantize),
            offline=settings.offline,
            backend=settings.backend,
            openvino_folder=settings.openvino_cache,
            gpu_budget_gib=settings.gpu_budget_gib,
            ram_budget_gib=settings.ram_budget_gib,
            # ZeroGPU wants every weight on the GPU from start-up: no offloading there.
            offload="none" if zerogpu.on_zero_gpu() else settings.offload,
        )
        runner = JobRunner(
            turns=Turns(
                settings.most_replicas if settings.ray else 1,
                settings.max_queued_per_user,
                settings.queue_size,
            ),
            max_image_side=settings.max_image_side,
            max_images=settings.max_images,
            access=ModelAccess(
                names={*presets.models, presets.default_model, *presets.local_names.values()},
                folders=settings.model_folders,
                any_path=settings.any_model_path,
            ),
            rate_limit=RateLimit(settings.max_runs_per_minute),
        )
        model_check = ModelCheck(cache, presets)
        if zerogpu.on_zero_gpu():
            # The platform wants weights on the GPU at start-up; requests then run in spaces.GPU functions.
            model_check.run(download=True)
            runner.gpu_runner = zerogpu.gpu_runner(runner.tasks, presets)
        elif settings.ray:
            from studio.ui import ray_replicas  # Ray only with --ray: an optional extra

            runner.replicas = ray_replicas.ray_replicas(settings, presets)
            model_check.elsewhere(f"up to {settings.most_replicas} Ray Serve replicas")
        else:
            model_check.start()
        image_targets = {tab.id: tab.label for tab in tabs if tab.takes_images}
        history = History(settings.outputs)
        style_codes = StyleCodes(settings.styles_folder)
        studio = cls(
            settings, presets, cache, history, runner, SendTo(image_targets), model_check, style_codes,
            Profiles(settings.profiles_folder),
        )  # fmt: skip
        runner.unfinished = studio.note_unfinished
        runner.personalised = studio.personalised
        return studio

    def note_unfinished(self, run: Run) -> None:
        """The history notes a run its visitor's closed page left unfinished, as theirs."""
        prompts = run.job.prompts or (str(run.job.values.get("prompt") or ""),)
        task = run.job.action or run.job.task
        owner = self.viewer(run.request).owner
        self.history.note_stopped(StoppedRun(task, " · ".join(prompts), run.made, run.total, owner))

    def viewer(self, request: gr.Request | None) -> Viewer:
        """Who is asking, for the history: with --auth, the signed-in user, who sees their own results;
        on a studio others can reach, the browser session, which sees what it made (everything with
        --public-history); on this machine alone, the local user, who sees everything."""
        if self.settings.auth:
            return Viewer(f"user:{getattr(request, 'username', None) or 'unknown'}", sees_all=False)
        if self.settings.reachable_by_others:
            return Viewer(f"session:{session_of(request)}", sees_all=self.settings.public_history)
        return Viewer()

    def profile_owner(self, request: gr.Request | None) -> str:
        """Whose taste profiles a request reads and changes: on this machine alone, its one user's; else the
        signed-in user's, the browser's (its cookie) or an API client's session's."""
        if not self.settings.auth and not self.settings.reachable_by_others:
            return LOCAL_OWNER
        return person_of(request)

    def personalised(self, task: Task, request: Request, asker: gr.Request | None) -> Request:
        """`request` steered by the asker's own taste profile: the one its `--p` names, or for none the one
        they turned on; a task that drafts nothing notes a `--p` it cannot honour."""
        if not isinstance(request, GenerationRequest) or request.taste is not None:
            return request
        if request.profile == NO_PROFILE:
            return request.model_copy(update={"profile": None})
        if not task.steered_by_taste:
            if request.profile is None:
                return request
            note = f"--p {request.profile} does nothing here (this task makes no drafts to choose from)"
            return request.model_copy(
                update={"profile": None, "ignored_parameters": (*request.ignored_parameters, note)}
            )
        owner = self.profile_owner(asker)
        if request.profile is None:
            profile = self.profiles.active(owner)
        else:
            profile = self.profiles.own(owner, request.profile)
            if profile is None:
                raise InvalidRequest(
                    "You have no profile yet: rate pairs on the Personalize tab to make one."
                )
        if profile is None:
            return request
        drafts, (fewest, most) = self.settings.profile_drafts, GenerationRequest.bounds("drafts")
        if not fewest <= drafts <= most:
            raise InvalidRequest(f"--profile-drafts must be from {fewest:g} to {most:g} (got {drafts}).")
        return request.model_copy(update={"taste": profile, "profile": profile.code, "drafts": drafts})

    @property
    def default_model(self) -> str:
        return self.presets.default_model

    def when_loaded(self, fn: Callable, inputs: list, outputs: list) -> None:
        """Run `fn(inputs) -> outputs` when a page opens (app.py wires it once the page is built)."""
        self.loads.append((fn, inputs, outputs))

    def pipeline(self, task: str, task_type: type[Task] | None = None) -> Task:
        """The task run as `task` (the studio's own from pipelines/registry.py, or `task_type` for one
        of a tab's own), built the first time it is asked for."""
        if task not in self.runner.tasks:
            built = (task_type or TASKS[task])(
                self.cache,
                self.presets,
                self.style_codes,
                self.settings.upscalers_dir,
                self.settings.loras_dir,
            )
            self.runner.add(task, built)
        return self.runner.tasks[task]
