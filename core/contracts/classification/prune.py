"""The classification prune stage's contract."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.prune import BASE

CONTRACT = replace(
    BASE,
    summary="Keep the most useful data.pruning.budget share of each class of the training split",
    params=("seed", "data.pruning"),
)
