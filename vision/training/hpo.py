"""Hyperparameter search with optuna, stored in SQLite so an interrupted search resumes.

The study lives in a file the train stage keeps between runs (a DVC `persist`
output). Its name is a fingerprint of everything a trial's score depends on
(data, model, training settings, search settings): change any of them and a new
study starts, while re-running after a crash or Ctrl-C continues the same one,
keeps every finished trial and retries the interrupted point first.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from core.spec.training import Hpo, SearchDimension

STUDY_FILE = "study.db"
DONE = (TrialState.COMPLETE, TrialState.PRUNED)

Objective = Callable[[optuna.Trial, dict[str, Any]], float]
"""(trial, sampled params) -> validation accuracy; reports per-epoch values to the trial for pruning."""


@dataclass(frozen=True)
class SearchResult:
    study: optuna.Study
    best_params: dict[str, Any]
    best_value: float
    new_trials: int
    """Trials run by this call (the rest were loaded from an earlier, interrupted run)."""
    seconds: dict[int, float] = field(default_factory=dict)
    """Wall-clock seconds of each trial this call ran, by trial number (earlier runs' are not kept: the study file
    stays the same bytes whatever the machine's speed)."""
    skipped: int = 0
    """Trials the budget left unrun."""
    budget: str | None = None
    """What the budget did, in a sentence (None: no budget)."""


class Plan(Protocol):
    """What the clock reads of a budget plan (vision.training.budget.BudgetPlan): minutes on the reference machine."""

    @property
    def final_minutes(self) -> float: ...

    def trial_minutes(self, epochs: int) -> float: ...


@dataclass
class Budget:
    """`train.hpo.budget_minutes`: the clock the search and the final training share.

    Projected from what the trials themselves measured (no benchmark is run first): the next trial costs at most
    the longest one so far. With a plan (vision.training.budget), the final training costs its planned seconds
    times the slowest ratio of a trial's measured to planned seconds (this machine's pace against the reference:
    a fit's one-off costs and its epochs that train every level are where the plan puts them); without one,
    `final_epochs` epochs at the slowest pace per epoch any trial ran (a pruned trial's epochs cost what a
    finished one's do)."""

    minutes: float
    final_epochs: int
    started: float = field(default_factory=time.perf_counter)
    plan: Plan | None = None
    """The plan's minutes for a trial and for the final training (None: no plan, the pace per epoch)."""

    def remaining(self) -> float:
        return self.minutes * 60 - (time.perf_counter() - self.started)

    def final_seconds(self, study: optuna.Study, seconds: dict[int, float]) -> float:
        """The final training's expected length at the slowest pace of the trials timed."""
        epochs = {t.number: max(1, len(t.intermediate_values)) for t in study.get_trials(deepcopy=False)}
        if self.plan is not None:
            pace = max((s / (60 * self.plan.trial_minutes(epochs.get(n, 1))) for n, s in seconds.items()),
                       default=0.0)
            return pace * 60 * self.plan.final_minutes
        pace = max((s / epochs.get(n, 1) for n, s in seconds.items()), default=0.0)
        return pace * self.final_epochs

    def allows_another(self, study: optuna.Study, seconds: dict[int, float]) -> bool:
        return max(seconds.values(), default=0.0) + self.final_seconds(study, seconds) <= self.remaining()

    def summary(self, study: optuna.Study, seconds: dict[int, float], ran: int, missing: int) -> str:
        """What the budget did: trials run and skipped, and the time the final training is expected to take."""
        spent, final = self.minutes - self.remaining() / 60, self.final_seconds(study, seconds) / 60
        text = (f"budget {self.minutes:g} min: the search ran {ran} of the {missing} trial(s) it had left in "
                f"{spent:.1f} min")
        if ran < missing:
            text += f" and skipped {missing - ran}: they would not have left the final training its time"
        if seconds:
            text += f"; the final training should take about {final:.1f} min of the {self.remaining() / 60:.1f} left"
        return text


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts, raw bytes and iterators of raw bytes (a split's images batch by
    batch: the same hash as their bytes whole, without holding them): names the study of one exact setting."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Iterator):
            for chunk in part:
                digest.update(chunk)
        else:
            digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True,
                                                                          default=str).encode())
    return digest.hexdigest()[:16]


def sample(trial: optuna.Trial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    """One point of the spec's search space; `batch_size` is an integer, everything else a float."""
    params: dict[str, Any] = {}
    for name, dim in sorted(space.items()):
        if dim.choices is not None:
            value = trial.suggest_categorical(name, dim.choices)
            params[name] = int(value) if name == "batch_size" else value
        elif name == "batch_size":
            params[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    return params


def _sampler(hpo: Hpo, seed: int) -> optuna.samplers.BaseSampler:
    if hpo.sampler == "grid":
        return optuna.samplers.GridSampler({name: dim.choices for name, dim in hpo.space.items()}, seed=seed)
    if hpo.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, hpo.trials // 3))


def _pruner(hpo: Hpo, epochs: int) -> optuna.pruners.BasePruner:
    if hpo.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if hpo.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.NopPruner()


def open_study(folder: Path, name: str, hpo: Hpo, epochs: int, seed: int) -> optuna.Study:
    """The study `name` in `folder`/study.db; studies of other settings in the file are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(folder / STUDY_FILE).resolve()}")
    earlier_trials = 0
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name != name:
            optuna.delete_study(study_name=summary.study_name, storage=storage)
        else:
            earlier_trials = summary.n_trials
    # A sampler's random state is not stored with the study: offsetting its seed by the trials already there
    # keeps a resumed search from proposing its first points again, and leaves an uninterrupted run as it was.
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=_sampler(hpo, seed + earlier_trials), pruner=_pruner(hpo, epochs))
    _retry_interrupted(study, storage)
    return study


def open_shared_study(url: str, name: str, hpo: Hpo, epochs: int, seed: int) -> optuna.Study:
    """The study `name` in a database that several machines share (PostgreSQL in a cluster).

    Other studies there are left alone (other projects and settings live beside it). Workers send a
    heartbeat: a worker that dies mid-trial has the trial failed by the others after the grace period and
    its parameters retried once, which is what `_retry_interrupted` does for the single-machine file.
    Each worker samples with its own seed (`seed` differs per worker), so two workers asking at the same
    moment do not propose the same point.
    """
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from sqlalchemy.exc import SQLAlchemyError

    def open_once() -> optuna.Study:
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=30, grace_period=120,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
        return optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                   sampler=_sampler(hpo, seed), pruner=_pruner(hpo, epochs))

    for attempt in range(4):
        try:
            return open_once()
        except SQLAlchemyError:
            # Workers started together on an empty database race to create optuna's tables and types;
            # the loser's CREATE fails. The winner's schema is there a moment later.
            time.sleep(1 + attempt)
    return open_once()


def missing_trials(study: optuna.Study, hpo: Hpo) -> int:
    """Trials the search still needs: finished and pruned ones count."""
    return hpo.trials - len(study.get_trials(deepcopy=False, states=DONE))


CLAIMED = (*DONE, TrialState.RUNNING, TrialState.WAITING)


def work(study: optuna.Study, hpo: Hpo, objective: Objective) -> int:
    """Run trials of a shared study until `hpo.trials` are finished or claimed; returns how many this
    worker finished. A trial is created first and its place checked after (the database numbers trials
    in creation order), so two workers never both take the last slot: the loser marks its trial failed
    (user attribute `over_budget`) and stops."""
    done = 0
    while True:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial is failed and queued again
        if len(study.get_trials(deepcopy=False, states=CLAIMED)) >= hpo.trials:
            break
        trial = study.ask()
        ahead = [t for t in study.get_trials(deepcopy=False, states=CLAIMED) if t.number < trial.number]
        if len(ahead) >= hpo.trials:
            trial.set_user_attr("over_budget", True)
            study.tell(trial, state=TrialState.FAIL)
            break
        try:
            value = objective(trial, sample(trial, hpo.space))
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
        done += 1
    return done


def keep_copy(url: str, name: str, folder: Path) -> None:
    """Copy the shared study into `folder`/study.db: the stage's record of the search, as on one machine."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STUDY_FILE).unlink(missing_ok=True)
    optuna.copy_study(from_study_name=name, from_storage=url, to_storage=f"sqlite:///{(folder / STUDY_FILE).resolve()}")


def _retry_interrupted(study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
    """Trials a killed run left RUNNING (or an interrupted one marked FAIL) are failed and queued again.

    DVC runs one stage at a time per repository, so a RUNNING trial seen at start-up
    belongs to a process that is gone. Re-queuing its parameters means the search
    covers the same points it would have without the interruption.
    """
    study_id = storage.get_study_id_from_name(study.study_name)

    def key(trial: optuna.trial.FrozenTrial) -> str:
        return json.dumps(trial.params, sort_keys=True)

    covered = {key(t) for t in study.get_trials(deepcopy=False, states=(*DONE, TrialState.WAITING))}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.FAIL)):
        if trial.state == TrialState.RUNNING:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        if trial.params and key(trial) not in covered:
            study.enqueue_trial(trial.params)
            covered.add(key(trial))


def search(study: optuna.Study, hpo: Hpo, objective: Objective, budget: Budget | None = None) -> SearchResult:
    """Run the trials still missing from `study` (finished and pruned ones count), return the best. With a
    budget, a trial starts only while it and the final training are projected to fit (the first always runs)."""
    missing = max(missing_trials(study, hpo), 0)
    seconds: dict[int, float] = {}

    def timed(trial: optuna.Trial) -> float:
        started = time.perf_counter()
        try:
            return objective(trial, sample(trial, hpo.space))
        finally:
            seconds[trial.number] = time.perf_counter() - started

    ran = 0
    while ran < missing:
        if budget is not None and (ran or study.get_trials(deepcopy=False, states=DONE)) and \
                not budget.allows_another(study, seconds):
            break
        study.optimize(timed, n_trials=1, catch=())
        ran += 1
    best = study.best_trial
    params = {**best.params}
    if "batch_size" in params:
        params["batch_size"] = int(params["batch_size"])
    note = None if budget is None else budget.summary(study, seconds, ran, missing)
    return SearchResult(study, params, float(best.value), ran, seconds, missing - ran, note)


FIXED_TIME = "2000-01-01 00:00:00.000000"


def settle_study_file(folder: Path) -> None:
    """Blank the trials' wall-clock times and rewrite the file compactly, once the search is over.

    The study file is a DVC output: with clock times in it, every run of the same search would record a new
    hash in dvc.lock, and a fresh clone could never reproduce the lock. Trial order, states, params and
    per-epoch values (all that sampling, pruning and the reports use) are kept; the stage prints run times.
    """
    with sqlite3.connect(folder / STUDY_FILE) as db:
        db.execute("UPDATE trials SET datetime_start = CASE WHEN datetime_start IS NULL THEN NULL ELSE ? END, "
                   "datetime_complete = CASE WHEN datetime_complete IS NULL THEN NULL ELSE ? END",
                   (FIXED_TIME, FIXED_TIME))
    db.close()
    # Rebuilt from its SQL dump, not VACUUMed in place: the file header counts the writes and schema changes
    # the file has seen, so only a file rebuilt from the same content is the same bytes whatever history
    # (resumes, reruns) the study had.
    fresh = folder / (STUDY_FILE + ".fresh")
    fresh.unlink(missing_ok=True)
    source, target = sqlite3.connect(folder / STUDY_FILE), sqlite3.connect(fresh)
    try:
        target.executescript("\n".join(source.iterdump()))
    finally:
        source.close()
        target.close()
    os.replace(fresh, folder / STUDY_FILE)


def trials_table(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: state, best validation accuracy, epochs trained, params (no clock times, so the
    table is the same file whenever the search is)."""
    rows = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if trial.user_attrs.get("over_budget"):  # a shared study's worker that found the budget taken
            continue
        rows.append({"number": trial.number, "state": trial.state.name.lower(),
                     "val_accuracy": None if trial.value is None else round(trial.value, 6),
                     "epochs": len(trial.intermediate_values),
                     **{k: v for k, v in sorted(trial.params.items())}})
    return rows


def leaderboard(study: optuna.Study, figure: str,
                trial_minutes: Callable[[int], float] | None = None) -> list[dict[str, Any]]:
    """The trials best first: a label with its setting (the chart's bars), its score by `figure`, epochs trained,
    its values and, under a budget, the minutes the plan's cost model gives a trial of those epochs
    (`trial_minutes`). Not the clock's minutes: the board is a DVC output, the same file whenever the search is;
    the train log prints what each trial took. Unscored (failed) trials come last."""
    rows = sorted(trials_table(study), key=lambda row: (row["val_accuracy"] is None, -(row["val_accuracy"] or 0.0),
                                                        row["number"]))
    board = []
    for rank, row in enumerate(rows, 1):
        values = {k: v for k, v in row.items() if k not in ("number", "state", "val_accuracy", "epochs")}
        setting = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        board.append({"rank": rank, "trial": f"{row['number']}: {setting}" if setting else str(row["number"]),
                      "state": row["state"], "score": row["val_accuracy"], "scored_by": figure,
                      "epochs": row["epochs"], **values,
                      **({"planned_minutes": round(trial_minutes(row["epochs"]), 2)} if trial_minutes else {})})
    return board
