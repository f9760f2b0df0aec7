"""The detection select stage's contract: the loop's round for a detector, which also reads the boxes and the
detector's settings."""

from __future__ import annotations

from dataclasses import replace

from core.contracts.loop.select import CONTRACT as LOOP_SELECT

CONTRACT = replace(LOOP_SELECT, params=(*LOOP_SELECT.params, "detection"),
                   inputs={**LOOP_SELECT.inputs, "boxes": "ingest.boxes"},
                   module_name="stages.detection.loop.select", task="detection")
