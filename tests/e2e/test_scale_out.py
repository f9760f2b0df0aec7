"""Scale-out proven on one machine with the real engines: Lightning DDP on two CPU processes (gloo) and two
optuna workers sharing one study on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from core.registry import stage_arguments, stage_named
from tests.conftest import REPO_ROOT, TINY_CLASSES, train_stage_repo
from vision.data.dataset import load_split, to_tensor
from vision.training.model import load_model

pytestmark = pytest.mark.slow


def _stage(root: Path, module: str, *launcher: str, env: dict[str, str] | None = None,
           background: bool = False) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """`module` (the train stage or an HPO worker, which reads what train reads) as dvc.yaml runs train: its
    inputs' paths on the command line."""
    command = [sys.executable, *launcher, "-m", module, *stage_arguments(stage_named("train"), "tiny"),
               "--root", str(root)]
    environment = {**os.environ, **(env or {})}
    if background:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=False)


def _test_accuracy(root: Path) -> float:
    model, config = load_model(root / "models/tiny/train")
    test = load_split(root / "data/tiny/ingest", root / "data/tiny/prune/split.csv", "test", TINY_CLASSES,
                      config.input_size_px)
    with torch.no_grad():
        predicted = model.eval()(to_tensor(test.images[:])).argmax(1).numpy()
    return float(np.mean(predicted == test.labels))


def test_ddp_on_two_cpu_processes_trains_a_model_as_good_as_one_process(tiny_digits: Path, tmp_path: Path) -> None:
    single, ddp = (train_stage_repo(tmp_path / name, tiny_digits) for name in ("single", "ddp"))
    started = time.perf_counter()
    one = _stage(single, "stages.train")
    single_seconds = time.perf_counter() - started
    assert one.returncode == 0, one.stdout + one.stderr
    started = time.perf_counter()
    two = _stage(ddp, "stages.train", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    ddp_seconds = time.perf_counter() - started
    assert two.returncode == 0, two.stdout + two.stderr
    assert "2 process(es)" in two.stdout  # it really ran distributed
    assert two.stdout.count("train: kept epoch") == 1  # rank 0 alone reports and writes
    accuracy = {name: _test_accuracy(root) for name, root in (("single", single), ("ddp", ddp))}
    metrics = {name: json.loads((root / "reports/tiny/train/metrics.json").read_text())
               for name, root in (("single", single), ("ddp", ddp))}
    print(f"test accuracy single {accuracy['single']:.3f} ({single_seconds:.1f} s), "
          f"DDP x2 {accuracy['ddp']:.3f} ({ddp_seconds:.1f} s); kept val {metrics['single']['val_accuracy']}"
          f" vs {metrics['ddp']['val_accuracy']}")
    assert accuracy["single"] >= 0.85
    assert accuracy["ddp"] >= accuracy["single"] - 0.1  # same quality, not the same bytes: each rank sees half
    assert len(list((ddp / "models/tiny").iterdir())) == 1  # one model folder: no rank wrote beside rank 0


HPO = """\
  hpo:
    trials: 4
    sampler: random
    pruner: none
    epochs_per_trial: 1
    space:
      lr: {low: 0.0005, high: 0.01, log: true}
"""


def test_two_optuna_workers_share_one_postgresql_study(tiny_digits: Path, tmp_path: Path,
                                                       postgres_url: str) -> None:
    repo = train_stage_repo(tmp_path / "repo", tiny_digits, epochs=2, extra=HPO)
    env = {"AUTODL_OPTUNA_STORAGE": postgres_url}
    workers = [_stage(repo, "stages.hpo_worker", env={**env, "JOB_COMPLETION_INDEX": str(i)}, background=True)
               for i in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    ran = [int(out.split(" ran ")[1].split(" trial")[0]) for out in outputs]
    assert sum(ran) == 4, outputs  # together exactly the budget
    assert min(ran) >= 1, outputs  # and both did some of it

    names = {out.split(" trial(s) of ")[1].split()[0] for out in outputs}
    assert len(names) == 1, outputs  # both workers computed the same study from the same inputs
    name = names.pop()
    study = optuna.load_study(study_name=name, storage=postgres_url)
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(done) == 4
    assert len({t.params["lr"] for t in done}) == 4  # no point was trained twice
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]

    trained = _stage(repo, "stages.train", env=env)  # the train stage finds the search done and trains
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "ran 0 new trial(s)" in trained.stdout
    metrics = json.loads((repo / "reports/tiny/train/metrics.json").read_text())
    assert metrics["hpo"]["best_trial_val_accuracy"] == max(t.value for t in done)
    kept = optuna.load_study(study_name=name, storage=f"sqlite:///{repo / 'models/tiny/hpo/study.db'}")
    assert len([t for t in kept.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                       optuna.trial.TrialState.PRUNED)]) == 4


def test_an_hpo_worker_without_a_shared_database_says_what_to_set(tiny_digits: Path, tmp_path: Path) -> None:
    repo = train_stage_repo(tmp_path / "repo", tiny_digits, extra=HPO)
    done = _stage(repo, "stages.hpo_worker", env={"AUTODL_OPTUNA_STORAGE": ""})
    assert done.returncode == 1
    assert "AUTODL_OPTUNA_STORAGE is not set" in done.stderr


def test_a_distributed_run_does_not_search_on_every_rank(tiny_digits: Path, tmp_path: Path) -> None:
    repo = train_stage_repo(tmp_path / "repo", tiny_digits, extra=HPO)
    done = _stage(repo, "stages.train", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                  env={"AUTODL_OPTUNA_STORAGE": ""})
    assert done.returncode != 0
    assert "a distributed run needs the search in a shared database" in done.stdout + done.stderr
    assert not (repo / "models/tiny/train").exists()
