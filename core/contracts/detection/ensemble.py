"""The detection ensemble stage's contract: detectors trained like the model, for the loop's uncertainty."""

from __future__ import annotations

from core.contracts.detection.train import CONTRACT as TRAIN
from core.contracts.loop.common import ensemble_contract

CONTRACT = ensemble_contract(TRAIN, "stages.detection.loop.ensemble", {"boxes": "ingest.boxes"})
