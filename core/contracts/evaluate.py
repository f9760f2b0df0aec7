"""What every task's evaluate stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import StageInfo

BASE = StageInfo(
    name="evaluate",
    inputs={"images": "ingest.images", "split": "split.split", "model": "train.model"},
    reports={"per_class": "reports/{project}/evaluate/per_class.json"},
    metrics={"metrics": "reports/{project}/evaluate/metrics.json"},
)
