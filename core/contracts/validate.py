"""What every task's validate stage writes and reads alike; each task's contract adds the rest."""

from __future__ import annotations

from core.contract import StageInfo
from core.contracts import WEB_ASSETS

BASE = StageInfo(
    name="validate",
    inputs={"images": "ingest.images", "manifest": "ingest.manifest", "quarantine": "ingest.quarantine"},
    outs={"data_docs": "reports/{project}/validate/data_docs"},
    files={"data_docs_index": "reports/{project}/validate/data_docs/index.html"},
    reports={"result": "reports/{project}/validate/result.json"},
    metrics={"summary": "reports/{project}/validate/summary.json"},
    data_files=WEB_ASSETS,
)
