"""Figures the train stage leaves for reviewers: what the augmentations do, how the search went."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from core.spec.training import AugmentSection
from vision.data.dataset import SplitData
from vision.plots import image_grid, pyplot, save_figure
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training.augment import GEOMETRIC_AND_COLOUR, apply, corruption, enabled, training_pipeline
from vision.training.model import ModelConfig

PREVIEW_COLUMNS = 6


def _examples(train: SplitData, config: ModelConfig, task: Task = CLASSIFICATION
              ) -> tuple[list[np.ndarray], list[str]]:
    """PREVIEW_COLUMNS training images taken from the targets in turn (the first image of each caption, in
    caption order, then the second of each, ...), so every class or tag set shows and none fills the row."""
    captions = [task.caption(target, config.classes) for target in train.labels]
    groups = {caption: [] for caption in sorted(set(captions))}
    for index, caption in enumerate(captions):
        groups[caption].append(index)
    chosen: list[int] = []
    for rank in range(max((len(indices) for indices in groups.values()), default=0)):
        chosen.extend(indices[rank] for indices in groups.values() if rank < len(indices))
        if len(chosen) >= PREVIEW_COLUMNS:
            break
    chosen = chosen[:PREVIEW_COLUMNS]
    return [train.images[i] for i in chosen], [captions[i] for i in chosen]


# Six parameters: the images and the spec's augmentations, the model's size and classes, the seed, where the
# picture goes, and the task that captions the targets.
def augmentation_preview(train: SplitData, augment: AugmentSection, config: ModelConfig, seed: int,
                         path: Path, task: Task = CLASSIFICATION) -> None:
    """One row per augmentation the spec turns on (always applied, at the spec's severity) and a last row as
    training draws them (each with its probability), so a reviewer sees what the spec asks for."""
    images, labels = _examples(train, config, task)
    rows: list[tuple[str, list[np.ndarray], list[str]]] = [("original", images, labels)]
    size = config.input_size_px
    for name in enabled(augment):
        if name in GEOMETRIC_AND_COLOUR:
            only = AugmentSection.model_validate({name: 1.0})
            pipeline = training_pipeline(only, size, seed)
        else:
            pipeline = corruption(name, augment.severity, size, seed)
        assert pipeline is not None
        probability = getattr(augment, name)
        rows.append((f"{name}\np={probability:g}", [apply(pipeline, image) for image in images], []))
    mixed = training_pipeline(augment, size, seed)
    if mixed is not None:
        rows.append(("as trained", [apply(mixed, image) for image in images], []))
    title = (f"Training augmentations at severity {augment.severity} (rows always applied; last row as drawn)"
             if mixed else "No augmentations in the spec: the model trains on the images as they are")
    image_grid(rows, path, title, cell_in=1.6)


def hpo_plots(study: Any, history_path: Path, importance_path: Path, seed: int) -> None:
    """optuna's own matplotlib figures: best value over trials, and fANOVA parameter importance."""
    import optuna

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # stable since 2.2
        _hpo_plots(study, history_path, importance_path, seed)


def _hpo_plots(study: Any, history_path: Path, importance_path: Path, seed: int) -> None:
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    plt = pyplot()
    axis = optuna_plots.plot_optimization_history(study)
    axis.set_ylabel("validation accuracy")
    save_figure(axis.figure, history_path)
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    scores = {t.value for t in finished}
    if len(finished) >= 2 and len(scores) >= 2:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        axis = optuna_plots.plot_param_importances(study, evaluator=evaluator)
        axis.figure.tight_layout()  # parameter names are long y tick labels
        save_figure(axis.figure, importance_path)
        return
    why = (f"Parameter importance needs 2 completed trials; this search has {len(finished)}." if len(finished) < 2
           else f"Parameter importance is undefined: all {len(finished)} completed trials scored "
                f"{next(iter(scores)):.4f}, so no parameter explains any difference.")
    figure, axis = plt.subplots(figsize=(7, 2), dpi=100)
    axis.set_axis_off()
    axis.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
    save_figure(figure, importance_path)
