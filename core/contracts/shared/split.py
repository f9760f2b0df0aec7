"""The split stage's contract: every task runs it as it is (it sees images, not labels)."""

from __future__ import annotations

from core.contract import StageInfo

CONTRACT = StageInfo(
    name="split",
    summary="Split into train, validation and test: stratified, group-aware, seeded, checked for leakage",
    params=("seed", "data.split"),
    inputs={"manifest": "clean.manifest", "rule": "clean.rule", "embeddings": "embed.embeddings"},
    outs={"splits": "data/{project}/split"},
    files={"split": "data/{project}/split/split.csv"},
    metrics={"summary": "reports/{project}/split/summary.json"},
)
