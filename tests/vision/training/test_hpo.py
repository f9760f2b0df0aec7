"""The optuna search: samples the spec's space, resumes an interrupted study, restarts on a new setting."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from core.spec.training import Hpo, SearchDimension
from vision.training import hpo as _hpo

HPO = Hpo(trials=3, sampler="random", pruner="none",
          space={"lr": SearchDimension(low=1e-4, high=1e-1, log=True), "batch_size": SearchDimension(choices=[16, 32])})


def _score(params: dict) -> float:
    return 1.0 - abs(params["lr"] - 0.01)


def test_search_runs_the_trials_and_samples_the_space(tmp_path: Path) -> None:
    study = _hpo.open_study(tmp_path, "s", HPO, epochs=1, seed=0)
    seen: list[dict] = []
    result = _hpo.search(study, HPO, lambda trial, params: seen.append(params) or _score(params))
    assert result.new_trials == 3
    assert len(seen) == 3
    assert all(1e-4 <= p["lr"] <= 1e-1 and p["batch_size"] in (16, 32) for p in seen)
    assert all(isinstance(p["batch_size"], int) for p in seen)
    assert result.best_value == max(_score(p) for p in seen)
    rows = _hpo.trials_table(study)
    assert [r["state"] for r in rows] == ["complete"] * 3
    assert set(rows[0]) == {"number", "state", "val_accuracy", "epochs", "lr", "batch_size"}


def test_an_interrupted_study_resumes_without_repeating_finished_trials(tmp_path: Path) -> None:
    calls: list[dict] = []

    def interrupted_at_second(trial: optuna.Trial, params: dict) -> float:
        calls.append(params)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second trial
        return _score(params)

    with pytest.raises(KeyboardInterrupt):
        _hpo.search(_hpo.open_study(tmp_path, "s", HPO, epochs=1, seed=0), HPO, interrupted_at_second)
    finished, cut_off = calls

    resumed: list[dict] = []
    study = _hpo.open_study(tmp_path, "s", HPO, epochs=1, seed=0)
    result = _hpo.search(study, HPO, lambda trial, params: resumed.append(params) or _score(params))
    assert finished not in resumed  # the finished trial is not run again
    assert resumed[0] == cut_off  # the interrupted point is retried first
    assert result.new_trials == len(resumed) == 2
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 3


def test_a_trial_left_running_by_a_killed_process_is_retried(tmp_path: Path) -> None:
    study = _hpo.open_study(tmp_path, "s", HPO, epochs=1, seed=0)
    killed = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
                        "batch_size": optuna.distributions.CategoricalDistribution([16.0, 32.0])})
    params = {"lr": killed.params["lr"], "batch_size": int(killed.params["batch_size"])}
    resumed: list[dict] = []
    study = _hpo.open_study(tmp_path, "s", HPO, epochs=1, seed=0)
    _hpo.search(study, HPO, lambda trial, p: resumed.append(p) or _score(p))
    assert resumed[0] == params
    assert len(resumed) == 3
    assert TrialState.RUNNING not in [t.state for t in study.trials]


def test_a_new_setting_starts_a_new_study_in_the_same_file(tmp_path: Path) -> None:
    _hpo.search(_hpo.open_study(tmp_path, "old", HPO, epochs=1, seed=0), HPO, lambda t, p: _score(p))
    study = _hpo.open_study(tmp_path, "new", HPO, epochs=1, seed=0)
    assert study.trials == []
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / _hpo.STUDY_FILE}") == ["new"]


def test_fingerprint_changes_with_any_part() -> None:
    base = _hpo.fingerprint(b"data", {"lr": 0.1}, 7)
    assert base == _hpo.fingerprint(b"data", {"lr": 0.1}, 7)
    assert len({base, _hpo.fingerprint(b"datb", {"lr": 0.1}, 7), _hpo.fingerprint(b"data", {"lr": 0.2}, 7),
                _hpo.fingerprint(b"data", {"lr": 0.1}, 8)}) == 4


def test_a_settled_study_file_is_the_same_bytes_for_the_same_search(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        study = _hpo.open_study(tmp_path / folder, "s", HPO, epochs=1, seed=0)
        _hpo.search(study, HPO, lambda trial, params: _score(params))
        _hpo.settle_study_file(tmp_path / folder)
    # a rerun that finds the search complete writes to the file again: still the same bytes afterwards
    _hpo.search(_hpo.open_study(tmp_path / "b", "s", HPO, epochs=1, seed=0), HPO, lambda t, p: _score(p))
    _hpo.settle_study_file(tmp_path / "b")
    assert (tmp_path / "a" / _hpo.STUDY_FILE).read_bytes() == (tmp_path / "b" / _hpo.STUDY_FILE).read_bytes()
    reopened = _hpo.open_study(tmp_path / "a", "s", HPO, epochs=1, seed=0)
    assert [t.state for t in reopened.trials] == [TrialState.COMPLETE] * 3


def test_importance_plot_explains_itself_when_every_trial_ties(tmp_path: Path) -> None:
    from vision.training.reports import hpo_plots

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: 0.9888 + 0 * trial.suggest_float("lr", 1e-3, 1e-2), n_trials=3)
    hpo_plots(study, tmp_path / "history.png", tmp_path / "importance.png", seed=0)  # fANOVA alone would raise
    assert (tmp_path / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "importance.png").read_bytes()[:4] == b"\x89PNG"


def _slow_trials(seconds: float, epochs: int = 2):
    """An objective whose trials each take `seconds` over `epochs` reported epochs."""
    import time

    def run(trial: optuna.Trial, params: dict) -> float:
        for epoch in range(epochs):
            time.sleep(seconds / epochs)
            trial.report(_score(params), epoch)
        return _score(params)

    return run


def test_a_budget_stops_the_search_where_the_final_training_would_no_longer_fit(tmp_path: Path) -> None:
    hpo = Hpo(trials=20, sampler="random", pruner="none", space={"lr": SearchDimension(low=1e-4, high=1e-1)})
    # trials of 0.2 s over 2 epochs: a final training of 4 epochs is projected at 0.4 s; 1.5 s leave 1.1 s for
    # the search, so it may start a trial only while 0.2 s + 0.4 s fit in what is left: 4 or 5 trials, not 20
    budget = _hpo.Budget(minutes=1.5 / 60, final_epochs=4)
    result = _hpo.search(_hpo.open_study(tmp_path, "s", hpo, epochs=2, seed=0), hpo, _slow_trials(0.2), budget)
    assert 2 <= result.new_trials <= 5, result.budget
    assert result.skipped == 20 - result.new_trials
    final = budget.final_seconds(result.study, result.seconds)
    assert final == pytest.approx(0.4, rel=0.5)
    assert budget.remaining() >= final - 0.1  # the final training still fits
    assert budget.remaining() < max(result.seconds.values()) + final  # and another trial would not have
    assert result.budget.startswith(f"budget 0.025 min: the search ran {result.new_trials} of the 20 trial(s)")
    assert f"skipped {result.skipped}: they would not have left the final training its time" in result.budget
    board = _hpo.leaderboard(result.study, "val_map", lambda epochs: 0.5 + 0.25 * epochs)
    assert [row["rank"] for row in board] == list(range(1, result.new_trials + 1))
    assert [row["score"] for row in board] == sorted((row["score"] for row in board), reverse=True)
    assert {row["scored_by"] for row in board} == {"val_map"}
    assert all(row["trial"].endswith(f": lr {row['lr']:.3g}") for row in board)  # the chart's bar labels
    assert all(row["planned_minutes"] == 1.0 for row in board)  # the plan's minutes for 2 epochs, not the clock's
    assert _hpo.leaderboard(result.study, "val_map") == [{k: v for k, v in row.items() if k != "planned_minutes"}
                                                         for row in board]


def test_the_first_trial_always_runs_and_a_generous_budget_runs_every_trial(tmp_path: Path) -> None:
    hpo = Hpo(trials=3, sampler="random", pruner="none", space={"lr": SearchDimension(low=1e-4, high=1e-1)})
    none_left = _hpo.Budget(minutes=1e-6, final_epochs=10)
    first = _hpo.search(_hpo.open_study(tmp_path / "a", "s", hpo, epochs=2, seed=0), hpo, _slow_trials(0.02),
                        none_left)
    assert (first.new_trials, first.skipped) == (1, 2)  # a search needs one result to give the final fit values
    plenty = _hpo.search(_hpo.open_study(tmp_path / "b", "s", hpo, epochs=2, seed=0), hpo, _slow_trials(0.02),
                         _hpo.Budget(minutes=10, final_epochs=10))
    assert (plenty.new_trials, plenty.skipped) == (3, 0)
    assert "skipped" not in plenty.budget


class _Plan:
    """On the reference machine a trial takes 0.06 s once and 0.02 s per epoch, the final training 0.5 s."""

    final_minutes = 0.5 / 60

    def trial_minutes(self, epochs: int) -> float:
        return (0.06 + 0.02 * epochs) / 60


def test_with_a_plan_the_final_training_is_projected_at_the_pace_the_trials_measured_against_it(tmp_path: Path) -> None:
    hpo = Hpo(trials=2, sampler="random", pruner="none", space={"lr": SearchDimension(low=1e-4, high=1e-1)})
    # a trial of 2 epochs planned at 0.1 s (0.06 once, 0.02 per epoch) runs 0.2 s: this machine is 2x slower than
    # the reference, so a final training planned at 0.5 s should take 1 s, whatever its epochs
    budget = _hpo.Budget(minutes=10, final_epochs=1, plan=_Plan())
    result = _hpo.search(_hpo.open_study(tmp_path, "s", hpo, epochs=2, seed=0), hpo, _slow_trials(0.2), budget)
    assert 1.0 <= budget.final_seconds(result.study, result.seconds) < 1.6  # a sleep lasts at least its time
