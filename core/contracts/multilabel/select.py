"""The multi-label select stage's contract: the loop's round for a tagger (no ensemble stage: its strategies rank
the deployable tagger's own per-tag uncertainty)."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.loop.select import CONTRACT as LOOP_SELECT

CONTRACT = replace(LOOP_SELECT, optional_inputs={}, module_name="stages.multilabel.select", task="multilabel")
