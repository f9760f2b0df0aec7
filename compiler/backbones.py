"""Backbone names known to timm, without importing timm (which would pull in torch).

The list is a data file checked against the installed timm by the test suite,
so the compiler stays fast and still rejects typos like 'resnet10'.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def known_backbones() -> frozenset[str]:
    text = resources.files("compiler").joinpath("data/timm_models.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
