"""A classifier's per-epoch figures: the lowest class recall, what `dependability.min_class_recall` gates on."""

from __future__ import annotations

import torch

from core.spec import ProjectSpec
from core.spec.training import TrainSection
from vision.tasks.classification import TASK


def _lowest_recall(predicted: list[int], labels: list[int], classes: int = 4) -> float:
    metric = TASK.epoch_figures(classes)["val_min_recall"]
    logits = torch.nn.functional.one_hot(torch.tensor(predicted), classes).float()
    half = len(labels) // 2  # two validation batches: the figure is over the epoch, not a batch mean
    metric.update(logits[:half], torch.tensor(labels[:half]))
    metric.update(logits[half:], torch.tensor(labels[half:]))
    return float(metric.compute())


def test_the_lowest_class_recall_is_that_of_the_class_found_least_often() -> None:
    # class 0: 3 of 4 found; class 1: 1 of 2; class 2: 2 of 2; class 3 has no validation image (not a recall of 0)
    labels = [0, 0, 0, 0, 1, 1, 2, 2]
    predicted = [0, 0, 0, 1, 1, 2, 2, 2]
    assert _lowest_recall(predicted, labels) == 0.5
    assert _lowest_recall(labels, labels) == 1.0
    assert _lowest_recall([1] * 8, labels) == 0.0  # a class never predicted: recall 0


def _spec(**keys) -> ProjectSpec:
    raw = {"name": "fabric", "classes": ["a", "b"], "data": {"sources": [{"kind": "sklearn_digits"}]}, **keys}
    return ProjectSpec.model_validate(raw)


def test_a_gate_on_every_class_s_recall_keeps_epochs_and_scores_trials_by_it() -> None:
    from stages.train import TrainInputs

    gated = _spec(dependability={"min_class_recall": 0.9})
    assert gated.train.select_by == "val_min_recall"
    assert _spec().train.select_by == "auto"
    pinned = _spec(dependability={"min_class_recall": 0.9}, train={"select_by": "val_loss"})
    assert pinned.train.select_by == "val_loss"  # what the spec states is kept

    def trial_figure(training: TrainSection) -> str:
        return TrainInputs(None, None, None, training, None, 0).trial_figure

    assert trial_figure(gated.train) == "val_min_recall"
    assert trial_figure(TrainSection(select_by="val_macro_f1")) == "val_macro_f1"
    assert trial_figure(TrainSection()) == "val_accuracy"  # lowest val loss keeps epochs; trials need a score


def test_a_later_epoch_is_kept_only_when_it_is_strictly_better_by_the_selected_figure() -> None:
    loss, accuracy = TASK.selection["val_loss"], TASK.selection["val_accuracy"]
    assert loss.improves(0.3, None)
    assert accuracy.improves(0.1, None)  # nothing kept yet: anything is kept
    assert loss.improves(0.3, 0.4)
    assert not loss.improves(0.5, 0.4)
    assert accuracy.improves(0.95, 0.94)
    assert not accuracy.improves(0.93, 0.94)
    assert not loss.improves(0.4, 0.4)  # a tie keeps the earlier epoch
    assert not accuracy.improves(0.94, 0.94)
