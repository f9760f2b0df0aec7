"""`train.hpo.budget_minutes` planned from a cost model: the same plan on every machine, sized to the minutes."""

from __future__ import annotations

import pytest
import timm
import torch

from core.model_choice import GMACS_AT_224
from core.spec.training import Hpo, TrainSection
from vision.training.budget import FitCost, fit_cost, frozen_levels, image_cost, plan, planned

THAWED = FitCost(150.0, 3.0)
"""An epoch with every level trained."""


def _training(minutes: float, **keys) -> TrainSection:
    return TrainSection(hpo=Hpo(budget_minutes=minutes, trials=8, epochs_per_trial=4), **keys)


def test_the_cost_is_counted_on_the_real_network_with_the_frozen_levels_apart() -> None:
    lite0 = timm.create_model("tf_efficientnet_lite0", num_classes=3)
    whole = image_cost(lite0, 224, 0)
    assert whole.forward_gmacs == pytest.approx(GMACS_AT_224["tf_efficientnet_lite0"], rel=0.01)
    assert whole.frozen_gmacs == 0.0
    two, four = image_cost(lite0, 224, 2), image_cost(lite0, 224, 4)
    assert 0 < two.frozen_gmacs < four.frozen_gmacs < four.forward_gmacs == pytest.approx(whole.forward_gmacs)
    probe = image_cost(lite0, 224, "all")
    assert probe.frozen_gmacs == probe.forward_gmacs
    assert lite0(torch.zeros(1, 3, 64, 64)).shape == (1, 3)  # counting left the network as it was


def test_an_epoch_costs_less_with_levels_frozen_and_least_for_a_probe() -> None:
    lite0 = timm.create_model("tf_efficientnet_lite0", num_classes=3)
    training = TrainSection(batch_size=64)
    fits = {f: fit_cost(image_cost(lite0, 256, f), training, 1400, 300, True) for f in (0, 2, 4)}
    assert fits[0].epoch_seconds > fits[2].epoch_seconds > fits[4].epoch_seconds
    assert fits[0].once_seconds < fits[2].once_seconds < fits[4].once_seconds  # more levels stored once
    cached = fit_cost(image_cost(lite0, 256, 4), training, 1400, 300, False)
    assert cached.epoch_seconds < fits[4].epoch_seconds  # no augmentation: the frozen levels run once
    probe = fit_cost(image_cost(lite0, 256, "all"), training, 1400, 300, False)
    assert probe.epoch_seconds == 0
    assert probe.seconds(20) < fits[4].seconds(1)


def test_the_plan_gives_the_final_training_half_and_the_search_the_rest() -> None:
    training = _training(20, epochs=15)
    final, trial = FitCost(90.0, 30.0), FitCost(120.0, 30.0)
    budget = plan(training, final, trial, THAWED)
    # final: (600 - 30) / 90 = 6 epochs; trials of ceil(6 / 3) = 2 epochs, 270 s each, in 1200 - 570 s: 2
    assert (budget.final_epochs, budget.trial_epochs, budget.trials) == (6, 2, 2)
    assert final.seconds(6) + 2 * trial.seconds(2) <= 20 * 60
    scaled = planned(training, budget)
    assert (scaled.epochs, scaled.hpo.trials, scaled.hpo.epochs_per_trial) == (6, 2, 2)
    generous = plan(_training(10_000, epochs=15), final, trial, THAWED)
    assert (generous.final_epochs, generous.trial_epochs, generous.trials) == (15, 4, 8)  # what the spec asked
    hopeless = plan(_training(1, epochs=15), FitCost(900.0, 30.0), FitCost(900.0, 30.0), THAWED)
    assert (hopeless.final_epochs, hopeless.trials) == (1, 1)  # always a model, and one trial for its values
    assert "final training 1 epoch(s) (train.epochs 15 would not fit)" in hopeless.lines(_training(1, epochs=15))


def test_freeze_auto_freezes_only_as_much_as_the_budget_needs() -> None:
    fits = {0: FitCost(180.0, 3.0), 2: FitCost(150.0, 20.0), 4: FitCost(90.0, 60.0)}
    assert frozen_levels(_training(60), fits)[0] == 0  # 30 min for the final: 6 full epochs take 18
    # 10 min: only 4 levels frozen give 6 epochs (9 + 1 min), when none of them trains every level
    levels, why = frozen_levels(_training(20, thaw_epochs=0), fits)
    assert levels == 4
    assert why.startswith("freeze: auto keeps 4 level(s) frozen: the fewest with which the final training gets 6")
    # with 2 of the 6 training every level (3 min each): 4 frozen epochs (6 min) + 6 min + 1 min fit in 14
    levels, why = frozen_levels(_training(28), fits)
    assert levels == 4
    assert why.endswith("(about 1.50 min each, 2 of them with every level trained)")
    assert frozen_levels(_training(5), fits)[1].startswith("freeze: auto keeps 4 levels frozen, the most")


def test_the_final_training_ends_with_epochs_that_train_every_level_where_they_fit() -> None:
    final, trial = FitCost(90.0, 30.0), FitCost(120.0, 30.0)
    training = _training(20, epochs=15, freeze=4)
    budget = plan(training, final, trial, THAWED)
    # 570 s of the final's 600 after its set-up: 2 thawed epochs (300 s) leave 270 s, 3 frozen epochs; the search
    # gets 1200 - 300 - 300 = 600 s: trials of ceil(3 / 3) = 1 epoch, 150 s each, 4 of them
    assert (budget.final_epochs, budget.thaw_epochs, budget.trial_epochs, budget.trials) == (3, 2, 1, 4)
    assert "final training 3 epoch(s) (train.epochs 15 would not fit), then 2 with every level trained" in \
        budget.lines(training)[1]
    assert planned(training, budget).thaw_epochs == 2
    # a thawed epoch of 250 s: two would leave less than 2 frozen epochs, so one
    assert plan(training, final, trial, FitCost(250.0, 3.0)).thaw_epochs == 1
    assert plan(_training(20, epochs=15, freeze=4, thaw_epochs=0), final, trial, THAWED).thaw_epochs == 0
    assert plan(_training(20, epochs=15, freeze=0), final, trial, THAWED).thaw_epochs == 0  # nothing to thaw
    assert plan(_training(20, epochs=15, freeze="all"), final, trial, THAWED).thaw_epochs == 0  # a probe
