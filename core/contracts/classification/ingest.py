"""The classification ingest stage's contract."""

from __future__ import annotations

from core.contract import StageInfo

CONTRACT = StageInfo(
    name="ingest",
    summary="Collect images from the spec's sources into one canonical image set and manifest",
    params=(
        "classes",
        "data.sources",
        "data.quality.min_size_px",
        "data.quality.max_image_pixels",
        "data.cleaning.static_frame_flow_px",
    ),
    outs={"images": "data/{project}/ingest"},
    files={
        "manifest": "data/{project}/ingest/manifest.csv",
        "quarantine": "data/{project}/ingest/quarantine.csv",
        "skipped": "data/{project}/ingest/skipped.csv",
    },
    metrics={"summary": "reports/{project}/ingest/summary.json"},
    reads_paths_of=("data.sources",),
)
