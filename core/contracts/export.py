"""What every task's export stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import StageInfo

BASE = StageInfo(
    name="export",
    inputs={"images": "ingest.images", "split": "prune.split", "candidates": "compress.candidates",
            "variants": "compress.variants"},
    outs={"deployable": "models/{project}/export"},
    reports={"choice": "reports/{project}/export/choice.json", "pareto": "reports/{project}/export/pareto.png"},
    metrics={"summary": "reports/{project}/export/summary.json"},
)
