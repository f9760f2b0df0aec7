"""The multi-label validate stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.validate import BASE

CONTRACT = replace(
    BASE,
    summary=("Data-quality gate for a tagger: a great-expectations suite from data.quality over the images and their "
             "tags, run as a checkpoint"),
    params=("classes", "data.quality"),
    inputs={**BASE.inputs, "tags": "ingest.tags"},
    module_name="stages.multilabel.validate",
    task="multilabel",
)
