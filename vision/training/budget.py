"""`train.hpo.budget_minutes` planned before anything trains: how many trials of how many epochs, and how many
final epochs, fit in the user's minutes.

The plan comes from a cost model, not from a timing run: each epoch's multiply-accumulates (counted on the real
network at its input size, frozen levels apart) times the seconds a GMAC of training work takes on the reference
machine (2 x86 cores). So the same spec and data plan the same search on every machine, and the trained model does
not depend on how busy the machine was; the search's wall-clock guard (vision.training.hpo.Budget) stops it on a
machine slower than the reference, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from core.spec.training import Hpo, TrainSection
from vision.training.freeze import frozen_modules
from vision.training.loaders import BN_REFRESH_MAX_STEPS

TRAIN_SECONDS_PER_GMAC = 0.21
"""Seconds a training step takes per GMAC of the trained levels' forward pass (their backward included), on the
reference machine: EfficientNet-Lite0 at 256 px through the train stage, 2 cores."""
INFER_SECONDS_PER_GMAC = 0.01
"""Seconds per GMAC of a forward pass without autograd (validation, BatchNorm refresh, frozen levels), batched."""
AUGMENT_SECONDS = 0.015
"""Seconds the loader spends augmenting one image (albumentations, the six families of `augment: auto`, 256 px)."""
# Measured in one process through the train stage's fit (192 training and 64 validation fabric images at 256 px,
# batch 32; seconds per epoch, measured / this model): full fine-tuning 22.0 / 21.5, with augmentation
# 24.8 / 24.4; 2 levels frozen 12.6 / 17.5, 15.5 / 20.6; 4 frozen 7.7 / 8.7, 11.0 / 12.2. The model errs on the
# long side (backward through the first, high-resolution levels costs more per MAC than through the later ones),
# so a plan finishes early rather than late.
FIT_SECONDS = 3.0
"""What one fit costs besides its epochs: Lightning's set-up and tear-down, the split decoded once."""
FINAL_SHARE = 0.5
"""Share of the budget the final training gets; the search has the rest."""
AUTO_FREEZE = (0, 2, 4)
"""What `train.freeze: auto` picks from under a budget: everything trained, or the first 2 or 4 levels kept."""
MIN_FINAL_EPOCHS = 6
"""Final epochs `freeze: auto` wants before it freezes fewer levels (or `train.epochs`, if fewer)."""


@dataclass(frozen=True)
class ImageCost:
    forward_gmacs: float
    """One image through the whole network."""
    frozen_gmacs: float
    """One image through the frozen levels (0 when none are frozen)."""


def image_cost(model: torch.nn.Module, size_px: int, freeze: int | str) -> ImageCost:
    """The network's multiply-accumulates for one image, counted by torch on a forward pass; the frozen levels'
    share is read when the last of them finishes (timm's levels run in order)."""
    frozen = frozen_modules(model, int(freeze)) if freeze != "all" else []
    seen: dict[str, float] = {}

    def at_end_of_frozen(*_: object) -> None:  # a hook that returns nothing leaves the output as it is
        seen.setdefault("frozen", counter.get_total_flops())

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        hooks = [model.get_submodule(frozen[-1]).register_forward_hook(at_end_of_frozen)] if frozen else []
        try:
            model.eval()(torch.zeros(1, 3, size_px, size_px))
        finally:
            for hook in hooks:
                hook.remove()
    total = counter.get_total_flops() / 2e9
    return ImageCost(total, seen.get("frozen", 0.0) / 2e9 if freeze != "all" else total)


def epoch_seconds(cost: ImageCost, training: TrainSection, train_images: int, val_images: int,
                  augmenting: bool) -> float:
    """One epoch of the train stage on the reference machine: the steps through the trained levels, the frozen
    levels' forward (per batch where augmentation changes the images, else once: counted here per epoch, to err
    long), validation, the BatchNorm refresh of short epochs and the augmentation itself."""
    trained = cost.forward_gmacs - cost.frozen_gmacs
    if trained <= 0:  # a linear probe: features once per image, then seconds of the head
        return (train_images + val_images) * cost.forward_gmacs * INFER_SECONDS_PER_GMAC
    refresh = math.ceil(train_images / training.batch_size) < BN_REFRESH_MAX_STEPS
    frozen_runs = (train_images if augmenting else 0) + train_images + val_images
    forward = (val_images + (train_images if refresh else 0)) * trained + frozen_runs * cost.frozen_gmacs
    return (train_images * trained * TRAIN_SECONDS_PER_GMAC + forward * INFER_SECONDS_PER_GMAC
            + (train_images * AUGMENT_SECONDS if augmenting else 0.0))


@dataclass(frozen=True)
class BudgetPlan:
    minutes: float
    trials: int
    trial_epochs: int
    final_epochs: int
    epoch_minutes: float
    """An epoch of the final training's setting, as the cost model estimates it."""
    trial_epoch_minutes: float
    """An epoch of the costliest setting the search may try."""

    def lines(self, training: TrainSection) -> list[str]:
        hpo = training.hpo
        assert hpo is not None
        asked_trial_epochs = hpo.epochs_per_trial or training.epochs
        return [f"budget {self.minutes:g} min planned on the reference machine (2 x86 cores): an epoch is about "
                f"{self.epoch_minutes:.2f} min ({self.trial_epoch_minutes:.2f} for the costliest searched setting)",
                f"final training {self.final_epochs} epoch(s)" + (f" (train.epochs {training.epochs} would not fit)"
                                                                 if self.final_epochs < training.epochs else ""),
                f"search {self.trials} trial(s) of {self.trial_epochs} epoch(s)"
                + (f" (of the {hpo.trials} x {asked_trial_epochs} asked for)"
                   if (self.trials, self.trial_epochs) != (hpo.trials, asked_trial_epochs) else "")]


def frozen_levels(training: TrainSection, epoch_seconds_by_levels: dict[int, float]) -> tuple[int, str]:
    """`freeze: auto` under a budget: the fewest frozen levels of AUTO_FREEZE whose final training still gets
    MIN_FINAL_EPOCHS epochs (or `train.epochs`) in its share; the most of them when none does. Why, in words."""
    assert training.hpo is not None
    assert training.hpo.budget_minutes is not None
    share = FINAL_SHARE * training.hpo.budget_minutes * 60 - FIT_SECONDS
    wanted = min(MIN_FINAL_EPOCHS, training.epochs)
    for levels in AUTO_FREEZE:
        if share / epoch_seconds_by_levels[levels] >= wanted:
            return levels, (f"freeze: auto keeps {levels} level(s) frozen: the fewest with which the final training "
                            f"gets {wanted} epochs (about {epoch_seconds_by_levels[levels] / 60:.2f} min each)")
    most = AUTO_FREEZE[-1]
    return most, (f"freeze: auto keeps {most} levels frozen, the most it tries: even so an epoch takes about "
                  f"{epoch_seconds_by_levels[most] / 60:.2f} min, short of {wanted} final epochs")


def plan(training: TrainSection, final_epoch_seconds: float, trial_epoch_seconds: float) -> BudgetPlan:
    """Final epochs in FINAL_SHARE of the budget (at most `train.epochs`, at least one); trials of a third of them
    (or `epochs_per_trial`, if fewer) in what is left (at most `hpo.trials`, at least one). Every fit also pays
    FIT_SECONDS."""
    hpo: Hpo | None = training.hpo
    assert hpo is not None
    assert hpo.budget_minutes is not None
    budget = hpo.budget_minutes * 60
    final = max(1, min(training.epochs, math.floor((FINAL_SHARE * budget - FIT_SECONDS) / final_epoch_seconds)))
    per_trial = max(1, min(hpo.epochs_per_trial or final, math.ceil(final / 3)))
    left = budget - FIT_SECONDS - final * final_epoch_seconds
    trials = max(1, min(hpo.trials, math.floor(left / (FIT_SECONDS + per_trial * trial_epoch_seconds))))
    return BudgetPlan(hpo.budget_minutes, trials, per_trial, final, final_epoch_seconds / 60,
                      trial_epoch_seconds / 60)


def planned(training: TrainSection, budget: BudgetPlan) -> TrainSection:
    """The training settings the plan trains: its final epochs, and its trials of its epochs."""
    assert training.hpo is not None
    hpo = training.hpo.model_copy(update={"trials": budget.trials, "epochs_per_trial": budget.trial_epochs})
    return training.model_copy(update={"epochs": budget.final_epochs, "hpo": hpo})
