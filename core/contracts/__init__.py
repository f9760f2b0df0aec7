"""Each stage's contract in a module of its own (core.contract.StageInfo), grouped by concern: `shared/` (the
stages every task runs as they are), `classification/`, `detection/` and `loop/` (the data loop's stages).

A stage module imports only its own contract, so the contract is part of that stage's code dependencies and
no other's: editing one stage's declared params re-runs that stage alone, and editing what it writes re-runs
it and the stages whose commands name those paths. The compiler assembles the pipelines (core.registry) and
passes every stage the paths of its inputs (`--input name=path`), so no stage reads another's contract.
"""

from __future__ import annotations

from core.contract import PlotInfo, WhenSet

WEB_ASSETS = ("core/webassets/manifest.json", "core/webassets/vendor")
"""The vendored scripts and styles the Data Docs copy: a new version re-runs the stages that ship them."""

SEARCH_OUTPUTS = WhenSet(
    "train.hpo",
    persist={"study": "models/{project}/hpo"},
    reports={
        "trials": "reports/{project}/train/hpo/trials.csv",
        "optimization_history": "reports/{project}/train/hpo/optimization_history.png",
        "param_importances": "reports/{project}/train/hpo/param_importances.png",
    },
    plots=(PlotInfo("leaderboard", "reports/{project}/train/hpo/leaderboard.csv", "score", ("trial",),
                    "bar_horizontal_sorted", "Search leaderboard: each trial's validation score (train.select_by)"),),
)
"""What the train stage of any task keeps when it searches: the resumable study and its reports."""
