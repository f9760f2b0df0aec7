"""The data's native resolution, from the sizes ingest recorded: what `autodl doctor` compares the spec's input
size with and what the search always tries."""

from __future__ import annotations

from statistics import median


def median_shorter_side(sizes: list[tuple[int, int]]) -> float | None:
    """The median of each image's shorter side: what an input size must keep for no detail to be lost."""
    return float(median(min(width, height) for width, height in sizes)) if sizes else None


def native_input_size(sizes: list[tuple[int, int]]) -> int | None:
    """The median shorter side as an input size: a multiple of 32 (what backbones downsample by), 32 to 1024."""
    short = median_shorter_side(sizes)
    return None if short is None else int(min(1024, max(32, round(short / 32) * 32)))
