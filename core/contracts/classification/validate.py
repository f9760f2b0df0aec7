"""The classification validate stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.validate import BASE

CONTRACT = replace(
    BASE,
    summary="Data-quality gate: a great-expectations suite from data.quality, run as a checkpoint",
    params=("classes", "data.quality"),
)
