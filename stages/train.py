"""train (classification): fit the spec's timm backbone with Lightning on the training split, keep the best epoch
(stages.training.train: the optuna search first when `train.hpo` is set, its best trial's values then train
the final model).

Deterministic on CPU (seeded, deterministic algorithms, seeded augmentations, single-process data loading from
memory): the same inputs give the same weights, byte for byte. Under a distributed launcher (torchrun, a
PyTorchJob) it trains with DDP and only rank 0 writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from core.fsutil import read_csv
from core.imports import CODE_PACKAGES, CODE_ROOT, import_closure
from core.model_choice import ModelChoice
from core.sizes import native_input_size
from core.spec.training import AugmentSection, TrainSection, offline_weights
from stages.runtime import StageContext, run_stage
from stages.training import SearchFromTrainSection, chosen_model, model_record, train
from vision.data.dataset import SplitData, load_splits, load_tagged_splits
from vision.data.streams import image_bytes
from vision.tasks import task as task_named
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training import hpo as _hpo
from vision.training.augment import enabled
from vision.training.budget import (
    AUTO_FREEZE,
    BudgetPlan,
    FitCost,
    fit_cost,
    frozen_levels,
    image_cost,
    plan,
    planned,
)
from vision.training.engine import FitResult
from vision.training.fit import TrainResult, history_fields
from vision.training.model import ModelConfig, build_model, save_model
from vision.training.modes import fit_with_mode
from vision.training.reports import augmentation_preview


# Eight parameters: the same values the search trials vary one by one (TrainInputs holds them for a trial).
def train_model(train: SplitData, val: SplitData, config: ModelConfig, training: TrainSection, seed: int,
                augment: AugmentSection | None = None, *, callbacks: tuple[Callback, ...] = (),
                progress: bool = True, task: Task = CLASSIFICATION, label: str = "train") -> TrainResult:
    """A fresh model for `config` (from scratch or the offline ImageNet weights), fitted (see `fit.fit`)."""
    L.seed_everything(seed, workers=True, verbose=False)
    return fit_with_mode(build_model(config), train, val, training, seed, augment, callbacks=callbacks,
                         progress=progress, task=task, label=label)


def with_params(training: TrainSection, config: ModelConfig,
                params: dict[str, Any]) -> tuple[TrainSection, ModelConfig]:
    """The training settings with searched values put in place (`lr` and `weight_decay` live in `optimizer`; a
    searched backbone starts from its offline ImageNet weights when there are some)."""
    optimizer = training.optimizer.model_copy(update={k: params[k] for k in ("lr", "weight_decay") if k in params})
    top = {k: params[k] for k in ("batch_size", "label_smoothing", "freeze", "balance") if k in params}
    model = {k: params[k] for k in ("drop_rate", "input_size_px") if k in params}
    if "backbone" in params:
        model |= {"backbone": params["backbone"], "pretrained": offline_weights(params["backbone"])}
    return training.model_copy(update={"optimizer": optimizer, **top}), replace(config, **model)


@dataclass(frozen=True)
class TrainInputs(SearchFromTrainSection):
    """Everything a trial's score depends on: the same for the train stage and every HPO worker."""

    train: SplitData
    val: SplitData
    config: ModelConfig
    training: TrainSection
    augment: AugmentSection | None
    seed: int
    task: Task = CLASSIFICATION
    source: tuple[Path, Path] | None = None
    """The ingest folder and split file, to load the splits at another searched input size."""
    tags: Path | None = None
    """A multi-label project's tag table: the splits' targets come from it (vision.data.tags)."""
    choice: ModelChoice | None = None
    """What `model: auto` decided, and why (None: the spec named every key)."""
    _resized: dict[int, tuple[SplitData, SplitData]] = field(default_factory=dict, compare=False, repr=False)

    def splits_at(self, size_px: int) -> tuple[SplitData, SplitData]:
        """The training and validation splits at `size_px` (loaded once per size)."""
        if size_px == self.config.input_size_px:
            return self.train, self.val
        if size_px not in self._resized:
            if self.source is None:
                raise ValueError(f"input size {size_px} searched but the images are only loaded at "
                                 f"{self.config.input_size_px}")
            ingest_dir, split_csv = self.source
            splits = (load_tagged_splits(ingest_dir, self.tags, split_csv, self.config.classes, size_px,
                                         names=("train", "val")) if self.tags is not None else
                      load_splits(ingest_dir, split_csv, self.config.classes, size_px, names=("train", "val")))
            self._resized[size_px] = (splits.train, splits.val)
        return self._resized[size_px]

    def study_name(self) -> str:
        return "hpo-" + _hpo.fingerprint(
            _code_digest(self.entry_module), image_bytes(self.train.images), self.train.labels.tobytes(),
            image_bytes(self.val.images), self.val.labels.tobytes(), asdict(self.config),
            self.training.model_dump(mode="json"), self.augment.model_dump(mode="json") if self.augment else None,
            self.seed)

    def objective(self) -> _hpo.Objective:
        """One trial: `epochs_per_trial` epochs with the sampled values, pruned per epoch by optuna."""
        from optuna_integration import PyTorchLightningPruningCallback

        # trials compare settings on the frozen epochs alone: the final training's thawed ones come after the search
        trial_training = self.training.model_copy(update={"epochs": self.trial_epochs, "thaw_epochs": 0, "hpo": None})

        def run(trial: Any, params: dict[str, Any]) -> float:
            run_training, run_config = with_params(trial_training, self.config, params)
            pruning = PyTorchLightningPruningCallback(trial, monitor=self.trial_figure)
            train, val = self.splits_at(run_config.input_size_px)
            return train_model(train, val, run_config, run_training, self.seed, self.augment,
                               callbacks=(pruning,), task=self.task,
                               label=f"train: search trial {trial.number}").kept[self.trial_figure]

        return run

    # What the generic train stage (stages.training.TrainTask) asks of a task.
    history_plot = "accuracy"
    entry_module = "stages.train"
    """The stage module whose code a trial's score depends on (its import closure names the study)."""

    @property
    def history_fields(self) -> tuple[str, ...]:
        return history_fields(self.task)

    @property
    def kept_figures(self) -> tuple[str, ...]:
        return ("val_loss", *self.task.history_figures)

    @property
    def trial_figure(self) -> str:
        """What `train.select_by` keeps epochs by, when higher is better; else the task's primary figure."""
        selected = self.training.selection(self.task.name)
        chosen = self.task.selection.get(selected)
        return selected if chosen is not None and chosen.mode == "max" else self.task.primary_figure

    def searched(self, params: dict[str, Any]) -> TrainInputs:
        training, config = with_params(self.training, self.config, params)
        return replace(self, training=training, config=config)

    def preview(self, path: Path) -> None:
        augmentation_preview(self.train, self.augment, self.config, self.seed, path, self.task)

    def final_fit(self) -> TrainResult:
        train, val = self.splits_at(self.config.input_size_px)
        return train_model(train, val, self.config, self.training, self.seed, self.augment, task=self.task)

    def save(self, result: FitResult, out: Path) -> None:
        save_model(result.model, self.config, out)

    def data_figures(self) -> dict[str, int]:
        return {"train_images": len(self.splits_at(self.config.input_size_px)[0].labels)}

    def model_record(self) -> dict[str, Any]:
        return model_record(self.config.backbone, self.config.pretrained, self.config.input_size_px, self.choice)

    def within_budget(self) -> tuple[TrainInputs, BudgetPlan | None]:
        """The search and final training sized to the budget by the cost model: the final setting as the spec
        has it, the search's epochs at the costliest setting its space holds."""
        training = self.training
        assert training.hpo is not None
        augmenting = bool(self.augment and enabled(self.augment))
        counts = len(self.train.labels), len(self.val.labels)

        @cache
        def fit_of(backbone: str, size: int, freeze: int | str) -> FitCost:
            network = build_model(replace(self.config, backbone=backbone, pretrained=None),
                                  with_pretrained_weights=False)
            return fit_cost(image_cost(network, size, freeze), training, *counts, augmenting)

        if training.freeze == "auto":
            levels, why = (frozen_levels(training, {n: fit_of(self.config.backbone, self.config.input_size_px, n)
                                                    for n in AUTO_FREEZE}) if self.config.pretrained else
                           (0, "freeze: auto trains every level: the backbone starts from scratch"))
            print(f"train: {why}", flush=True)
            training = training.model_copy(update={"freeze": levels})
        space = training.hpo.space
        options = [space[key].choices if key in space and space[key].choices else [default] for key, default in
                   (("backbone", self.config.backbone), ("input_size_px", self.config.input_size_px),
                    ("freeze", training.freeze))]
        final = fit_of(self.config.backbone, self.config.input_size_px, training.freeze)
        costliest = max((fit_of(str(b), int(z), f if f == "all" else int(f)) for b, z, f in product(*options)),
                        key=lambda fit: fit.seconds(training.hpo.epochs_per_trial or 1))
        budget = plan(training, final, costliest, fit_of(self.config.backbone, self.config.input_size_px, 0))
        for line in budget.lines(training):
            print(f"train: {line}", flush=True)
        return replace(self, training=planned(training, budget)), budget


def model_config(ctx: StageContext) -> tuple[ModelConfig, ModelChoice]:
    """The classifier's (or tagger's) config: the spec's model with its `auto` keys decided."""
    choice = chosen_model(ctx)
    config = ModelConfig(choice.backbone, list(ctx.spec("classes")), choice.input_size_px,
                         ctx.spec("model").drop_rate, choice.pretrained)
    return config, choice


def load_inputs(ctx: StageContext) -> TrainInputs:
    config, choice = model_config(ctx)
    ingest_dir, split_csv = ctx.input("images"), ctx.input("split")
    splits = load_splits(ingest_dir, split_csv, config.classes, config.input_size_px, names=("train", "val"))
    training = with_native_size(ctx.spec("train"), ctx.input("manifest"))
    return TrainInputs(splits.train, splits.val, config, training, ctx.spec("augment"), ctx.spec("seed"),
                       task_named(ctx.spec("task")), (ingest_dir, split_csv), choice=choice)


def with_native_size(training: TrainSection, manifest: Path) -> TrainSection:
    """A search over `input_size_px` always tries the data's native size (the median shorter side, as a multiple
    of 32): the resolution at which nothing is lost."""
    hpo = training.hpo
    if hpo is None or "input_size_px" not in hpo.space or not manifest.is_file():
        return training
    rows = read_csv(manifest)
    native = native_input_size([(int(r["width"]), int(r["height"])) for r in rows]) if rows else None
    sizes = hpo.space["input_size_px"].choices or []
    if native is None or native in sizes:
        return training
    dimension = hpo.space["input_size_px"].model_copy(update={"choices": sorted([*sizes, native])})
    print(f"train: the search's input_size_px choices get the data's native size, {native} px", flush=True)
    return training.model_copy(update={"hpo": hpo.model_copy(update={"space": {**hpo.space,
                                                                               "input_size_px": dimension}})})


def _code_digest(module: str) -> bytes:
    """The train stage's code dependencies (its import closure): trials scored by other code are stale."""
    closure = import_closure(module, CODE_ROOT, CODE_PACKAGES)
    return b"".join((CODE_ROOT / path).read_bytes() for path in closure)


def main(ctx: StageContext) -> None:
    train(ctx, load_inputs(ctx))


if __name__ == "__main__":
    from core.contracts.classification.train import CONTRACT

    run_stage(CONTRACT, main)
