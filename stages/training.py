"""The train stage's body, whatever the task: an optional optuna search over `train.hpo.space`, then the final
fit with the best trial's values, the model and its per-epoch history, the metrics and the search's reports.

The study lives in the stage's SQLite file, or, when AUTODL_OPTUNA_STORAGE names a database, in that shared
database, where `python -m stages.hpo_worker` processes on other machines may already have run its trials (a
copy is kept in the SQLite file for the record). Under a distributed launcher (torchrun, a PyTorchJob) the
fit runs on every rank and only rank 0 writes.

What differs between tasks (the data, the model, its fit and the figures it keeps) is a `TrainTask` that each
task's train module builds from the stage's inputs and passes to `train`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.fsutil import atomic_directory, read_csv, write_csv, write_json
from core.model_choice import ModelChoice, choose_model
from core.spec.training import Hpo, TrainSection
from stages.runtime import StageContext, StageFailure
from vision.training import hpo as _hpo
from vision.training.budget import BudgetPlan
from vision.training.engine import FitResult, world
from vision.training.reports import hpo_plots

STUDY_URL_ENV = "AUTODL_OPTUNA_STORAGE"
"""A database URL (postgresql+psycopg2://...) for a study shared by several machines; unset: the stage's file."""


Task = TypeVar("Task", bound="TrainTask")


class TrainTask(Protocol):
    """What a task tells the train stage: its data and settings, how a trial and the final fit run, and what
    the fit's record says."""

    seed: int
    history_fields: tuple[str, ...]
    """The per-epoch history's columns."""
    history_plot: str
    """The contract's plot whose file the history is."""
    kept_figures: tuple[str, ...]
    """The kept epoch's figures written as metrics."""
    trial_figure: str
    """The validation figure a search trial returns (and optuna's pruning watches)."""

    @property
    def hpo(self) -> Hpo | None:
        """The spec's train.hpo (None: no search)."""

    @property
    def trial_epochs(self) -> int:
        """Epochs each search trial trains."""

    @property
    def final_epochs(self) -> int:
        """Epochs the final fit trains (what a search budget keeps time for)."""

    def study_name(self) -> str:
        """The study's name: a fingerprint of everything a trial's score depends on, code included."""

    def objective(self) -> _hpo.Objective:
        """One trial: its sampled values in place, fitted for `trial_epochs`, scored by `trial_figure`."""

    def searched(self, params: dict[str, Any]) -> TrainTask:
        """The same task with a search's values in place."""

    def preview(self, path: Path) -> None:
        """A picture of the training augmentations on real training images."""

    def final_fit(self) -> FitResult:
        """The final fit."""

    def save(self, result: FitResult, out: Path) -> None:
        """The fitted model in `out` (the stage's `model` output)."""

    def data_figures(self) -> dict[str, int]:
        """What the fit learned from (training images, boxes...), as metrics."""

    def model_record(self) -> dict[str, Any]:
        """The model that trains (after the search), and which of its keys `model: auto` chose and why."""

    def within_budget(self: Task) -> tuple[Task, BudgetPlan | None]:
        """The task with `train.hpo.budget_minutes` planned into its epochs and trials (vision.training.budget),
        and the plan; a task without a cost model returns itself and no plan, and says so."""


class SearchFromTrainSection:
    """The search's settings read from the task's `training` (the spec's train section), as every task has it."""

    training: TrainSection

    @property
    def hpo(self) -> Hpo | None:
        return self.training.hpo

    @property
    def trial_epochs(self) -> int:
        """Epochs each search trial trains (`hpo.epochs_per_trial`, else `train.epochs`)."""
        assert self.training.hpo is not None
        return self.training.hpo.epochs_per_trial or self.training.epochs

    @property
    def final_epochs(self) -> int:
        return self.training.epochs


def chosen_model(ctx: StageContext, *, sized: bool = True) -> ModelChoice:
    """The spec's model with its `auto` keys decided (core.model_choice) from the images' sizes ingest recorded
    and the target hardware; `sized`: False where the task takes its input size from elsewhere. Printed, so
    the log says what to pin."""
    model = ctx.spec("model")
    sized = sized and model.input_size_px == "auto"
    sizes = [(int(r["width"]), int(r["height"])) for r in read_csv(ctx.input("manifest"))] if sized else []
    choice = choose_model(model, sizes, ctx.spec("target.hardware") if sized else None,
                          ctx.spec("compress.budget.max_latency_ms") if sized else None)
    for reason in choice.reasons:
        print(f"train: model: auto chose {reason}", flush=True)
    if choice.chosen:
        print(f"train: to keep this choice, pin it in the spec: {choice.pinned()}", flush=True)
    return choice


def model_record(backbone: str, pretrained: str | None, input_size_px: int | tuple[int, int],
                 choice: ModelChoice | None) -> dict[str, Any]:
    """The train report's `model`: what trained (the search's values in place), and what `auto` chose and why."""
    record: dict[str, Any] = {"backbone": backbone, "pretrained": pretrained, "input_size_px": input_size_px}
    if choice is not None and choice.chosen:
        record |= {"chosen": list(choice.chosen), "reasons": list(choice.reasons)}
    return record


def search_hyperparameters(task: TrainTask, study_dir: Path, budget: _hpo.Budget | None = None
                           ) -> _hpo.SearchResult:
    """Optuna over `task.hpo.space`, in the shared database when one is set, else in `study_dir`'s file; with a
    budget (`train.hpo.budget_minutes`), only the trials that leave the final fit its time."""
    hpo = task.hpo
    assert hpo is not None
    epochs = task.trial_epochs
    url = os.environ.get(STUDY_URL_ENV)
    rank, size = world()
    if url:
        study = _hpo.open_shared_study(url, task.study_name(), hpo, epochs, task.seed)
    elif size > 1:
        raise StageFailure(f"a distributed run needs the search in a shared database: set {STUDY_URL_ENV} and "
                           "let `python -m stages.hpo_worker` fill it first")
    else:
        study = _hpo.open_study(study_dir, task.study_name(), hpo, epochs, task.seed)
    if size > 1 and _hpo.missing_trials(study, hpo) > 0:  # every rank would run the missing trials itself
        raise StageFailure(f"the shared study has {_hpo.missing_trials(study, hpo)} of {hpo.trials} trials still "
                           "to run: run the HPO workers (k8s/<project>/pipeline/hpo-job.yaml) before training")
    result = _hpo.search(study, hpo, task.objective(), budget)
    if rank == 0:
        if url:
            _hpo.keep_copy(url, study.study_name, study_dir)
        _hpo.settle_study_file(study_dir)
    return result


def searched_task(ctx: StageContext, task: TrainTask, primary: bool, plan: BudgetPlan | None
                  ) -> tuple[TrainTask, dict[str, Any]]:
    """The task with the search's best values in place, and the search's figures; the trials table, leaderboard
    and plots written by rank 0."""
    started = time.perf_counter()
    hpo = task.hpo
    assert hpo is not None
    budget = _hpo.Budget(hpo.budget_minutes, task.final_epochs, plan=plan) if hpo.budget_minutes else None
    found = search_hyperparameters(task, ctx.output("study"), budget)
    if primary:
        write_csv(ctx.output("trials"), _hpo.trials_table(found.study))
        write_csv(ctx.output("leaderboard"), _hpo.leaderboard(found.study, task.trial_figure,
                                                              plan.trial_minutes if plan else None))
        hpo_plots(found.study, ctx.output("optimization_history"), ctx.output("param_importances"), task.seed)
    for number, seconds in sorted(found.seconds.items()):
        print(f"train: trial {number} took {seconds / 60:.2f} min", flush=True)
    print(f"train: hyperparameter search ran {found.new_trials} new trial(s) in {time.perf_counter() - started:.1f} "
          f"s; best {found.best_params} ({task.trial_figure} {found.best_value:.4f})")
    if found.budget:
        print(f"train: {found.budget}", flush=True)
    return task.searched(found.best_params), {"trials": len(found.study.trials), "skipped_trials": found.skipped,
                                              f"best_trial_{task.trial_figure}": found.best_value,
                                              **{f"best_{k}": v for k, v in found.best_params.items()}}


def budgeted(task: Task) -> tuple[Task, BudgetPlan | None]:
    """The task as `train.hpo.budget_minutes` plans it (its epochs, trials and frozen levels), and the plan; the
    task as it is without a budget. The train stage, the HPO workers and the loop's ensemble all train this."""
    if task.hpo and task.hpo.budget_minutes:
        return task.within_budget()
    return task, None


def train(ctx: StageContext, task: TrainTask) -> None:
    """The train stage for `task`: search (when the spec asks), fit, and write the model and its record."""
    primary = world()[0] == 0
    if primary:
        task.preview(ctx.output("augmentations"))
    searched: dict[str, Any] = {}
    task, plan = budgeted(task)
    if task.hpo:
        task, searched = searched_task(ctx, task, primary, plan)
        searched |= {"plan": asdict(plan)} if plan else {}
    started = time.perf_counter()
    result = task.final_fit()
    seconds = time.perf_counter() - started
    if not result.primary:
        return  # the other ranks of a distributed run: rank 0 writes the model and the reports
    with atomic_directory(ctx.output("model")) as out:
        task.save(result, out)
    write_csv(ctx.output(task.history_plot), result.history, task.history_fields)
    kept = result.kept
    data = task.data_figures()
    write_json(ctx.output("metrics"), {"kept_epoch": result.kept_epoch, "selected_by": result.selected_by,
                                       **{name: kept[name] for name in task.kept_figures},
                                       "epochs_run": len(result.history), **data,
                                       "model": task.model_record(),
                                       **({"hpo": searched} if searched else {})})
    learned = ", ".join(f"{value} {name.removeprefix('train_')}" for name, value in data.items())
    print(f"train: {result.summary()} ({learned}, {world()[1]} process(es), {seconds:.1f} s)")
