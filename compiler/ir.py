"""The pipeline IR: what the planner produces and every emitter renders.

Small and explicit on purpose: a stage is its command, the exact param keys it
reads, the files it reads and writes. Emitters never look at the spec for
anything the IR already says.
"""

from __future__ import annotations

from dataclasses import dataclass

# A plot of the IR is the contract's `dvc plots` view with the project filled into its path.
from core.contract import PlotInfo as Plot

__all__ = ["Pipeline", "Plot", "PromotedModel", "Stage"]


@dataclass(frozen=True)
class Stage:
    project: str
    name: str
    description: str
    cmd: str
    params: tuple[str, ...]
    """Fully qualified param keys (`digits.train.optimizer.lr`), sorted."""
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    persist: tuple[str, ...]
    """Outputs DVC leaves in place when the stage re-runs (resumable state)."""
    reports: tuple[str, ...]
    """Outputs tracked by git rather than the DVC cache (`cache: false`)."""
    metrics: tuple[str, ...]
    plots: tuple[Plot, ...]

    def written(self) -> tuple[str, ...]:
        """Every path the stage writes."""
        return (*self.outs, *self.persist, *self.reports, *self.metrics, *self.plot_files())

    def plot_files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(plot.path for plot in self.plots))

    @property
    def id(self) -> str:
        """The DVC stage name; project names cannot hold '-' at the end, stage names hold none."""
        return f"{self.project}-{self.name}"


@dataclass(frozen=True)
class Pipeline:
    project: str
    spec_path: str
    stages: tuple[Stage, ...]

    def upstream_of(self, stage: Stage) -> tuple[Stage, ...]:
        """Stages that write something `stage` reads."""
        return tuple(s for s in self.stages if s is not stage and any(
            _within(dep, out) for dep in stage.deps for out in s.written()))


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


@dataclass(frozen=True)
class PromotedModel:
    """What the promote stage records in `k8s/<p>/promoted.yaml`: the model serving should load."""

    storage_uri: str
    """Content-addressed: `<serving.storage_uri>/<project>/<digest>`."""
    digest: str
    """sha256 of the deployable artifact."""
