"""The Memory panel: what the model cache holds, where and how big, against the budget; a Free button."""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio.core.cache import ModelCache
from studio.ui.common import INSTANT_EVENT
from studio.ui.i18n import tr

MIB = 1024**2


def _size(value: int | None) -> str:
    if value is None:
        return "no limit"
    return f"{value / 1024**3:.2f} GiB" if value >= 1024**3 else f"{value / MIB:.0f} MiB"


def summary(report: dict[str, Any]) -> str:
    used, budget = report["used_bytes"], report["budget_bytes"]
    lines = [f"**{report['device']}**"]
    if budget["accelerator"] is not None:
        lines.append(f"GPU: {_size(used['accelerator'])} of {_size(budget['accelerator'])}")
    lines.append(f"RAM: {_size(used['cpu'])} of {_size(budget['ram'])}")
    if budget["accelerator"] is not None:
        lines.append(f"offload: {report['offload']}")
    return " · ".join(lines)


def table(report: dict[str, Any]) -> list[list[str]]:
    where = {"accelerator": "GPU", "cpu": "RAM"}
    return [
        [model["name"], where[model["where"]], _size(model["bytes"]), "yes" if model["in_use"] else ""]
        for model in report["models"]
    ]


def create_panel(cache: ModelCache) -> None:
    with gr.Accordion(tr("Memory"), open=False, elem_id="memory-panel") as panel:
        overview = gr.Markdown(elem_id="memory-summary")
        models = gr.Dataframe(
            headers=["Model", "Where", "Size", "In use"],
            datatype=["str", "str", "str", "str"],
            interactive=False,
            elem_id="memory-models",
        )
        with gr.Row():
            refresh = gr.Button(tr("Refresh"), size="sm", elem_id="memory-refresh")
            free = gr.Button(tr("Free memory"), size="sm", variant="stop", elem_id="memory-free")
        details = gr.JSON(label=tr("Details"), visible=False)

    def memory() -> dict[str, Any]:
        """What the model cache holds: each model with where it lives (GPU or RAM), its size in bytes and
        whether a job is using it; the bytes used; the budgets (null: no limit); and the offload mode."""
        return cache.memory_report()

    def free_memory() -> dict[str, Any]:
        """Drop every model no job is using, then report as /memory does."""
        cache.free_idle()
        return cache.memory_report()

    def show(report: dict[str, Any]):
        return summary(report), table(report)

    for button, action, name in ((refresh, memory, "memory"), (free, free_memory, "free_memory")):
        button.click(action, None, [details], api_name=name, queue=False).then(
            show, [details], [overview, models], **INSTANT_EVENT
        )
    panel.expand(memory, None, [details], **INSTANT_EVENT).then(
        show, [details], [overview, models], **INSTANT_EVENT
    )
