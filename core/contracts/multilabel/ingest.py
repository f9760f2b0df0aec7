"""The multi-label ingest stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.ingest import BASE

CONTRACT = replace(
    BASE,
    summary=("Collect tagged images from the spec's sources into one canonical image set, an image manifest (each "
             "image's stratum for the split) and a tag table; images with unknown tags quarantined"),
    params=("classes", "data.sources", "data.quality.min_size_px", "data.quality.max_image_pixels"),
    files={**BASE.files, "tags": "data/{project}/ingest/tags.csv"},
    module_name="stages.multilabel.ingest",
    task="multilabel",
)
