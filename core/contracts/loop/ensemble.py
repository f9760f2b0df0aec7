"""The classification ensemble stage's contract: members trained like the model, for the loop's uncertainty."""

from __future__ import annotations

from core.contracts.classification.train import CONTRACT as TRAIN
from core.contracts.loop.common import ensemble_contract

CONTRACT = ensemble_contract(TRAIN, "stages.loop.ensemble")
