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
# Measured through the train stage, seconds of one fit of one epoch, measured / modelled. On 192 training and 64
# validation fabric images at 256 px, batch 32: full fine-tuning 22.0 / 24.5, with augmentation 24.8 / 27.4;
# 2 levels frozen 12.6 / 22.9 and 15.5 / 26.0; 4 frozen 7.7 / 19.4 and 11.0 / 22.9 (the model errs long, most on
# small sets). In the minimal fabric spec's run (1,398 training and 300 validation images, 4 levels frozen,
# `augment: auto`, batch 64): 82 and 86 s per epoch against 82.5 modelled, and 47-57 s per fit storing the frozen
# levels' activations against 59.6.
FIT_SECONDS = 3.0
"""What one fit costs besides its epochs and stored activations: Lightning's set-up and tear-down, the split
decoded once."""
STORE_SECONDS_PER_GMAC = 0.105
"""Seconds per GMAC of the frozen levels computing and storing the activations of every training and validation
image once per fit (the first levels run at the highest resolution: slow per MAC; 57 s for 1,698 fabric images at
256 px with 4 levels of Lite0 frozen)."""
FINAL_SHARE = 0.5
"""Share of the budget the final training gets; the search has the rest."""
AUTO_FREEZE = (0, 2, 4)
"""What `train.freeze: auto` picks from under a budget: everything trained, or the first 2 or 4 levels kept."""
MIN_FINAL_EPOCHS = 6
"""Final epochs `freeze: auto` wants before it freezes fewer levels (or `train.epochs`, if fewer), those that train
every level (`thaw_epochs`) included."""
THAW_EPOCHS = 2
"""Epochs with every level trained that `thaw_epochs: auto` gives a final training with frozen levels."""
MIN_FROZEN_EPOCHS = 2
"""Frozen epochs the final training keeps: the epochs with every level trained give way first."""


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


@dataclass(frozen=True)
class FitCost:
    """What one fit of a setting takes on the reference machine."""

    epoch_seconds: float
    once_seconds: float
    """Per fit whatever its epochs: set-up, and the frozen levels' activations computed and stored once."""

    def seconds(self, epochs: int) -> float:
        return self.once_seconds + epochs * self.epoch_seconds


def fit_cost(cost: ImageCost, training: TrainSection, train_images: int, val_images: int,
             augmenting: bool) -> FitCost:
    """A fit on the reference machine: per epoch the steps through the trained levels, the frozen levels' forward
    where augmentation changes the images (per batch, without autograd), validation, the BatchNorm refresh of
    short epochs and the augmentation itself; once, the frozen levels' activations of the unaugmented images."""
    trained = cost.forward_gmacs - cost.frozen_gmacs
    stored = (train_images + val_images) * cost.frozen_gmacs * STORE_SECONDS_PER_GMAC
    if trained <= 0:  # a linear probe: features once per image, then seconds of the head
        return FitCost(0.0, FIT_SECONDS + stored)
    refresh = math.ceil(train_images / training.batch_size) < BN_REFRESH_MAX_STEPS
    forward = ((val_images + (train_images if refresh else 0)) * trained
               + (train_images * cost.frozen_gmacs if augmenting else 0.0))
    epoch = (train_images * trained * TRAIN_SECONDS_PER_GMAC + forward * INFER_SECONDS_PER_GMAC
             + (train_images * AUGMENT_SECONDS if augmenting else 0.0))
    return FitCost(epoch, FIT_SECONDS + stored)


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
    fit_minutes: float
    """What the final fit costs once, besides its epochs (set-up, stored activations)."""
    thaw_epochs: int
    """Epochs after the frozen ones that train every level (vision.training.modes)."""
    thaw_epoch_minutes: float
    """One of them, every level trained."""
    trial_fit_minutes: float
    """What a fit of the costliest searched setting costs once."""
    freeze: int | str
    """The frozen levels the plan trains with (`freeze: auto` decided)."""

    @property
    def final_minutes(self) -> float:
        """The final training as planned: its fit, frozen epochs and epochs that train every level."""
        return self.fit_minutes + self.final_epochs * self.epoch_minutes + self.thaw_epochs * self.thaw_epoch_minutes

    def trial_minutes(self, epochs: int) -> float:
        """A trial of `epochs` at the costliest searched setting, as planned (pruned trials train fewer)."""
        return self.trial_fit_minutes + epochs * self.trial_epoch_minutes

    def lines(self, training: TrainSection) -> list[str]:
        hpo = training.hpo
        assert hpo is not None
        asked_trial_epochs = hpo.epochs_per_trial or training.epochs
        return [f"budget {self.minutes:g} min planned on the reference machine (2 x86 cores): an epoch is about "
                f"{self.epoch_minutes:.2f} min ({self.trial_epoch_minutes:.2f} for the costliest searched setting), "
                f"plus {self.fit_minutes:.2f} min per fit",
                f"final training {self.final_epochs} epoch(s)" + (f" (train.epochs {training.epochs} would not fit)"
                                                                 if self.final_epochs < training.epochs else "")
                + (f", then {self.thaw_epochs} with every level trained (about {self.thaw_epoch_minutes:.2f} min "
                   "each)" if self.thaw_epochs else ""),
                f"search {self.trials} trial(s) of {self.trial_epochs} epoch(s)"
                + (f" (of the {hpo.trials} x {asked_trial_epochs} asked for)"
                   if (self.trials, self.trial_epochs) != (hpo.trials, asked_trial_epochs) else "")]


def asked_thaw(training: TrainSection, levels: int | str) -> int:
    """The epochs with every level trained that a final training with `levels` frozen asks for: `thaw_epochs` as
    set, THAW_EPOCHS for `auto`; none without frozen levels (or with a linear probe)."""
    if not isinstance(levels, int) or not levels:  # a probe, or `auto` undecided (no plan)
        return 0
    return THAW_EPOCHS if training.thaw_epochs == "auto" else int(training.thaw_epochs)


def final_epochs_within(training: TrainSection, levels: int | str, final: FitCost, thawed: FitCost
                        ) -> tuple[int, int]:
    """The final training in its FINAL_SHARE of the budget with `levels` frozen: (frozen epochs, epochs with every
    level trained). Those that train every level (`thawed` costs one) fit first, as many as leave room for
    MIN_FROZEN_EPOCHS frozen ones; the frozen epochs fill the rest, at most `train.epochs` and at least one."""
    assert training.hpo is not None
    assert training.hpo.budget_minutes is not None
    room = FINAL_SHARE * training.hpo.budget_minutes * 60 - final.once_seconds
    thaw = asked_thaw(training, levels)
    while thaw and room - thaw * thawed.epoch_seconds < MIN_FROZEN_EPOCHS * final.epoch_seconds:
        thaw -= 1
    room -= thaw * thawed.epoch_seconds
    frozen = math.floor(room / final.epoch_seconds) if final.epoch_seconds else training.epochs
    return max(1, min(training.epochs, frozen)), thaw


def frozen_levels(training: TrainSection, fits: dict[int, FitCost]) -> tuple[int, str]:
    """`freeze: auto` under a budget: the fewest frozen levels of AUTO_FREEZE whose final training, as the plan
    sizes it (final_epochs_within), gets MIN_FINAL_EPOCHS epochs (or `train.epochs`), those with every level
    trained among them; the most of them when none does. Why, in words."""
    wanted = min(MIN_FINAL_EPOCHS, training.epochs)
    for levels in AUTO_FREEZE:
        frozen, thaw = final_epochs_within(training, levels, fits[levels], fits[0])
        if frozen + thaw >= wanted:
            return levels, (f"freeze: auto keeps {levels} level(s) frozen: the fewest with which the final training "
                            f"gets {wanted} epochs (about {fits[levels].epoch_seconds / 60:.2f} min each"
                            + (f", {thaw} of them with every level trained" if thaw else "") + ")")
    most = AUTO_FREEZE[-1]
    return most, (f"freeze: auto keeps {most} levels frozen, the most it tries: even so an epoch takes about "
                  f"{fits[most].epoch_seconds / 60:.2f} min, short of {wanted} final epochs")


def plan(training: TrainSection, final: FitCost, trial: FitCost, thawed: FitCost) -> BudgetPlan:
    """The final training as final_epochs_within sizes it; trials of a third of its frozen epochs (or
    `epochs_per_trial`, if fewer) in what is left (at most `hpo.trials`, at least one)."""
    hpo: Hpo | None = training.hpo
    assert hpo is not None
    assert hpo.budget_minutes is not None
    budget = hpo.budget_minutes * 60
    final_epochs, thaw = final_epochs_within(training, training.freeze, final, thawed)
    per_trial = max(1, min(hpo.epochs_per_trial or final_epochs, math.ceil(final_epochs / 3)))
    left = budget - final.seconds(final_epochs) - thaw * thawed.epoch_seconds
    trials = max(1, min(hpo.trials, math.floor(left / trial.seconds(per_trial))))
    return BudgetPlan(hpo.budget_minutes, trials, per_trial, final_epochs, final.epoch_seconds / 60,
                      trial.epoch_seconds / 60, final.once_seconds / 60, thaw, thawed.epoch_seconds / 60,
                      trial.once_seconds / 60, training.freeze)


def planned(training: TrainSection, budget: BudgetPlan) -> TrainSection:
    """The training settings the plan trains: its final epochs, and its trials of its epochs."""
    assert training.hpo is not None
    hpo = training.hpo.model_copy(update={"trials": budget.trials, "epochs_per_trial": budget.trial_epochs})
    return training.model_copy(update={"epochs": budget.final_epochs, "thaw_epochs": budget.thaw_epochs, "hpo": hpo})
