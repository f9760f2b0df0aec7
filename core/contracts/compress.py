"""What every task's compress stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import StageInfo

BASE = StageInfo(
    name="compress",
    inputs={"images": "ingest.images", "split": "prune.split", "model": "train.model"},
    outs={"candidates": "models/{project}/compress"},
    files={"variants": "models/{project}/compress/variants.json"},
    metrics={"summary": "reports/{project}/compress/summary.json"},
)
