"""The compiler's copy of timm's model names matches the installed timm."""

from __future__ import annotations

import timm

from compiler.backbones import known_backbones


def test_backbone_list_matches_installed_timm() -> None:
    installed = set(timm.list_models())
    assert known_backbones() == installed, (
        "compiler/data/timm_models.txt is stale; regenerate it from timm.list_models() "
        f"(missing: {sorted(installed - known_backbones())[:5]}, extra: {sorted(known_backbones() - installed)[:5]})")
