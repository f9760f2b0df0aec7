"""The classification ingest stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.ingest import BASE

CONTRACT = replace(
    BASE,
    summary="Collect images from the spec's sources into one canonical image set and manifest",
    params=("classes", "data.sources", "data.quality.min_size_px", "data.quality.max_image_pixels",
            "data.cleaning.static_frame_flow_px"),
)
