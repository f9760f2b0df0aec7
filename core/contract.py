"""The contract between a stage and the pipeline, by name: what it reads, what it writes, which params.

Every file or folder a stage writes has a name (`outputs`); a stage reads another stage's output only
through a named input that refers to it (`"split": "prune.split"`), and its code asks for it by that name
(`ctx.input("split")`), never by position or by a file name of its own. Files inside an output folder that
later stages read are named outputs too (`files`), so a file's name is written in exactly one place.
Paths are templates: `{project}` is replaced by the spec's name. Each stage's contract is a module of its own
(core.contracts); the compiler resolves a stage's input references and passes the paths on its command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlotInfo:
    """One `dvc plots` view of a CSV the stage writes; a file may back several views."""

    name: str
    """Short view name; the plot id in `dvc.yaml` is `<stage id>-<name>`."""
    path: str
    x: str
    y: tuple[str, ...]
    """Columns drawn against x; `name_{class}` stands for one column per class of the project."""
    template: str = "linear"
    title: str = ""


@dataclass(frozen=True)
class WhenSet:
    """Outputs a stage writes only when a spec key is set (not null), such as a search study."""

    key: str
    """Spec key relative to the project (`train.hpo`)."""
    persist: Mapping[str, str] = field(default_factory=dict)
    """DVC outputs kept in place between runs (`persist: true`): state a rerun resumes from."""
    reports: Mapping[str, str] = field(default_factory=dict)
    plots: tuple[PlotInfo, ...] = ()


@dataclass(frozen=True)
class ProjectInput:
    """An output of another project's pipeline: the project is named by a spec key of this one (a cascade's
    `cascade.detector`), runs `task`, and `reference` names the output in that task's pipeline. DVC runs the other
    project's stage first; an edit to that project re-runs this stage, and nothing else of this project."""

    key: str
    """Spec key (relative to this project) whose value names the other project; unset (null): no input."""
    task: str
    """The task the named project runs (the compiler checks it)."""
    reference: str
    """`<stage>.<output name>` in that project's pipeline."""


@dataclass(frozen=True)
class StageInfo:
    name: str
    summary: str = ""
    params: tuple[str, ...] = ()
    """Spec keys the stage reads, relative to the project (`train.optimizer.lr`, or a whole `train`); a stage's
    base form (core.contracts.<stage>, what every task's form of it writes) leaves them to the task's form."""
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Local name -> `<stage>.<output name>` of an earlier stage: everything the stage reads."""
    optional_inputs: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Local name -> (`<stage>.<output name>`, spec key): inputs read only when the spec key is set (not null),
    such as the data loop's ensemble; the key must be among `params`, so the stage knows whether to read it."""
    project_inputs: Mapping[str, ProjectInput] = field(default_factory=dict)
    """Local name -> an output of another project named in this project's spec (a cascade reads its detector's
    and classifier's deployable models); read only when the spec key is set, and the key must be among `params`."""
    outs: Mapping[str, str] = field(default_factory=dict)
    """Outputs kept in the DVC cache (files or folders)."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Files inside this stage's own output folders that other stages read (not DVC outputs themselves)."""
    reports: Mapping[str, str] = field(default_factory=dict)
    """Small outputs kept in git instead of the DVC cache, so pull requests show their diffs."""
    metrics: Mapping[str, str] = field(default_factory=dict)
    plots: tuple[PlotInfo, ...] = ()
    optional: tuple[WhenSet, ...] = ()
    reads_paths_of: tuple[str, ...] = ()
    """Spec keys whose repository paths the stage also reads (`data.sources`, `dependability.ood.ood_sources`);
    they become dependencies, so changing the files re-runs the stage."""
    data_files: tuple[str, ...] = ()
    """Files or folders other than Python modules that the stage's code reads (templates, vendored web assets):
    code dependencies too."""
    module_name: str = ""
    """The stage's module when it is not `stages.<name>` (a task's own version of a stage)."""
    only_when: str = ""
    """Spec key that must be set (not null) for the stage to be in the pipeline at all; empty: always."""
    task: str = "classification"
    """The task whose pipeline runs this form of the stage (the stages every task shares leave the default)."""

    @property
    def module(self) -> str:
        return self.module_name or f"stages.{self.name}"

    def outputs(self) -> dict[str, str]:
        """Every named thing the stage writes, conditional outputs included: name -> path template."""
        named = {**self.outs, **self.files, **self.reports, **self.metrics,
                 **{p.name: p.path for p in self.plots}}
        for when in self.optional:
            named.update({**when.persist, **when.reports, **{p.name: p.path for p in when.plots}})
        return named

    def dvc_outputs(self) -> set[str]:
        """Path templates DVC tracks as this stage's outputs (everything but files inside them)."""
        return {path for name, path in self.outputs().items() if name not in self.files}


class ContractError(LookupError):
    """A stage asked for a name its contract does not declare, or a reference points nowhere."""
