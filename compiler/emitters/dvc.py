"""`params.yaml` and `dvc.yaml`: the local pipeline DVC runs with `dvc repro`."""

from __future__ import annotations

from typing import Any

from compiler.emitters import EmitContext, header
from compiler.emitters._yaml import dump_yaml, sort_keys
from compiler.ir import Plot, Stage


class ParamsEmitter:
    """Every spec, defaults filled in, namespaced by project: the keys stages declare and read."""

    name = "params"

    def emit(self, ctx: EmitContext) -> dict[str, str]:
        params = {item.spec.name: item.spec.model_dump(mode="json") for item in ctx.specs}
        return {"params.yaml": header("#", [s.path for s in ctx.specs]) + dump_yaml(sort_keys(params))}


class DvcPipelineEmitter:
    """All projects' stages in one `dvc.yaml`, in pipeline order, with DVC's own key order."""

    name = "dvc"

    def emit(self, ctx: EmitContext) -> dict[str, str]:
        all_stages = [stage for pipeline in ctx.pipelines for stage in pipeline.stages]
        stages = {stage.id: stage_entry(stage) for stage in all_stages}
        plots = [{f"{stage.id}-{plot.name}": _plot_view(plot)} for stage in all_stages for plot in stage.plots]
        sources = [s.path for s in ctx.specs] + ["core/registry.py"]
        return {"dvc.yaml": header("#", sources) + dump_yaml({"stages": stages} | ({"plots": plots} if plots else {}))}


def stage_entry(stage: Stage) -> dict[str, Any]:
    """The `dvc.yaml` entry of one stage; also what impact analysis compares against the baseline."""
    fields: dict[str, Any] = {
        "desc": stage.description,
        "cmd": stage.cmd,
        "deps": list(stage.deps),
        "params": list(stage.params),
        # A plot's CSV is a plain output: the top-level `plots:` definitions draw it. Declared again as a stage
        # `plots:` output, DVC would draw every file a second time with its default template (a confusion
        # matrix as a line chart), doubling the page `dvc plots show` writes.
        "outs": [*stage.outs, *({path: {"persist": True}} for path in stage.persist),
                 *({path: {"cache": False}} for path in (*stage.reports, *stage.plot_files()))],
        "metrics": [{path: {"cache": False}} for path in stage.metrics],
    }
    return {key: value for key, value in fields.items() if value}


def _plot_view(plot: Plot) -> dict[str, Any]:
    """A top-level `plots:` definition: several y fields of a file can share one chart there."""
    view = {"template": plot.template, "x": plot.x, "y": {plot.path: list(plot.y)}}
    return view | ({"title": plot.title} if plot.title else {})
