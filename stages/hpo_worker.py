"""hpo_worker: one of several optuna workers filling the train stage's study in a shared database.

`python -m stages.hpo_worker --project <p>` with AUTODL_OPTUNA_STORAGE set to a database URL (in a cluster,
from a Secret). It reads what the train stage reads, opens the same study (same name: the fingerprint of
data, model, settings and code), runs trials until the spec's budget is finished or claimed, and writes
nothing else: the train stage then finds the study complete, picks the best trial and trains. Workers on
other machines run beside it (`k8s/<p>/pipeline/hpo-job.yaml`: an Indexed Job, one seed per index).
"""

from __future__ import annotations

import os
import time

from stages.runtime import StageContext, StageFailure, run_stage
from stages.train import load_inputs
from stages.training import STUDY_URL_ENV, budgeted
from vision.training import hpo as _hpo

WORKER_INDEX_ENV = "JOB_COMPLETION_INDEX"
"""Set by Kubernetes for each pod of an Indexed Job; each worker offsets the sampler's seed by it."""


def main(ctx: StageContext) -> None:
    url = os.environ.get(STUDY_URL_ENV)
    if not url:
        raise StageFailure(f"{STUDY_URL_ENV} is not set: HPO workers share a study in a database "
                           "(e.g. postgresql+psycopg2://user@host/db); on one machine `dvc repro` runs the search")
    inputs = load_inputs(ctx)
    inputs, _ = budgeted(inputs)  # the train stage's plan: its study's name
    hpo = inputs.training.hpo
    if hpo is None:
        raise StageFailure(f"{ctx.project} has no train.hpo: there is nothing to search")
    index = int(os.environ.get(WORKER_INDEX_ENV, "0"))
    study = _hpo.open_shared_study(url, inputs.study_name(), hpo, inputs.trial_epochs, inputs.seed + index)
    started = time.perf_counter()
    done = _hpo.work(study, hpo, inputs.objective())
    print(f"hpo_worker {index}: ran {done} trial(s) of {study.study_name} in {time.perf_counter() - started:.1f} s; "
          f"{_hpo.missing_trials(study, hpo)} still missing")


if __name__ == "__main__":
    from core.contracts.classification.train import CONTRACT

    run_stage(CONTRACT, main)
