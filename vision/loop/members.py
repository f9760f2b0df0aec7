"""The data loop's ensemble members, whatever the task: trained as the model was, each with a seed of its own."""

from __future__ import annotations

from typing import Any


def searched(train_metrics: dict[str, Any]) -> dict[str, Any]:
    """The values the train stage's search chose (`best_<name>` in its metrics, not the best trial's own
    figures), so members train with them too."""
    return {k.removeprefix("best_"): v for k, v in (train_metrics.get("hpo") or {}).items()
            if k.startswith("best_") and not k.startswith("best_trial_")}


def member_seeds(seed: int, members: int) -> list[int]:
    """Seeds of the members to train: member 0 is the trained model (seed `seed`)."""
    return [seed + k for k in range(1, members)]
