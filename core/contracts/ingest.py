"""What every task's ingest stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import StageInfo

BASE = StageInfo(
    name="ingest",
    outs={"images": "data/{project}/ingest"},
    files={"manifest": "data/{project}/ingest/manifest.csv", "quarantine": "data/{project}/ingest/quarantine.csv",
           "skipped": "data/{project}/ingest/skipped.csv"},
    metrics={"summary": "reports/{project}/ingest/summary.json"},
    reads_paths_of=("data.sources",),
)
