"""What every task's train stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import StageInfo
from core.contracts import SEARCH_OUTPUTS

BASE = StageInfo(
    name="train",
    inputs={"images": "ingest.images", "split": "prune.split"},
    outs={"model": "models/{project}/train"},
    reports={"augmentations": "reports/{project}/train/augmentations.png"},
    metrics={"metrics": "reports/{project}/train/metrics.json"},
    optional=(SEARCH_OUTPUTS,),
)
