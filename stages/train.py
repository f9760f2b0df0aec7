"""train: fit the spec's timm backbone with Lightning on the training split, keep the best epoch.

With `train.hpo` set, an optuna search (stages/_hpo.py) picks the hyperparameters
first and its best trial's values train the final model. The study lives in the
stage's SQLite file, or, when AUTODL_OPTUNA_STORAGE names a database, in that
shared database, where `python -m stages.hpo_worker` processes on other machines
may already have run its trials (a copy is kept in the SQLite file for the record).
Deterministic on CPU (seeded, deterministic algorithms, seeded augmentations,
single-process data loading from memory): the same inputs give the same weights,
byte for byte. Under a distributed launcher (torchrun, a PyTorchJob) it trains
with DDP and only rank 0 writes.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from core.fsutil import atomic_directory, read_csv, write_csv, write_json
from core.imports import CODE_PACKAGES, CODE_ROOT, import_closure
from core.sizes import native_input_size
from core.spec.training import AugmentSection, ModelSection, TrainSection
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.dataset import SplitData, load_splits
from vision.data.streams import image_bytes
from vision.tasks import task as task_named
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training import hpo as _hpo
from vision.training.engine import world
from vision.training.fit import HISTORY_FIELDS, TrainResult
from vision.training.model import ModelConfig, build_model, save_model
from vision.training.modes import fit_with_mode
from vision.training.pretrained import offline_weights_for
from vision.training.reports import augmentation_preview, hpo_plots


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
        model |= {"backbone": params["backbone"], "pretrained": offline_weights_for(params["backbone"])}
    return training.model_copy(update={"optimizer": optimizer, **top}), replace(config, **model)


STUDY_URL_ENV = "AUTODL_OPTUNA_STORAGE"
"""A database URL (postgresql+psycopg2://...) for a study shared by several machines; unset: the stage's file."""


@dataclass(frozen=True)
class TrainInputs:
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
    _resized: dict[int, tuple[SplitData, SplitData]] = field(default_factory=dict, compare=False, repr=False)

    def splits_at(self, size_px: int) -> tuple[SplitData, SplitData]:
        """The training and validation splits at `size_px` (loaded once per size)."""
        if size_px == self.config.input_size_px:
            return self.train, self.val
        if size_px not in self._resized:
            if self.source is None:
                raise ValueError(f"input size {size_px} searched but the images are only loaded at "
                                 f"{self.config.input_size_px}")
            splits = load_splits(*self.source, self.config.classes, size_px, names=("train", "val"))
            self._resized[size_px] = (splits.train, splits.val)
        return self._resized[size_px]

    @property
    def trial_epochs(self) -> int:
        """Epochs each search trial trains (`hpo.epochs_per_trial`, else `train.epochs`)."""
        assert self.training.hpo is not None
        return self.training.hpo.epochs_per_trial or self.training.epochs

    def study_name(self) -> str:
        return "hpo-" + _hpo.fingerprint(
            _code_digest(), image_bytes(self.train.images), self.train.labels.tobytes(), image_bytes(self.val.images),
            self.val.labels.tobytes(), asdict(self.config), self.training.model_dump(mode="json"),
            self.augment.model_dump(mode="json") if self.augment else None, self.seed)

    def objective(self) -> _hpo.Objective:
        """One trial: `epochs_per_trial` epochs with the sampled values, pruned per epoch by optuna."""
        from optuna_integration import PyTorchLightningPruningCallback

        trial_training = self.training.model_copy(update={"epochs": self.trial_epochs, "hpo": None})

        def run(trial: Any, params: dict[str, Any]) -> float:
            run_training, run_config = with_params(trial_training, self.config, params)
            pruning = PyTorchLightningPruningCallback(trial, monitor="val_accuracy")
            train, val = self.splits_at(run_config.input_size_px)
            return train_model(train, val, run_config, run_training, self.seed, self.augment,
                               callbacks=(pruning,), task=self.task,
                               label=f"train: search trial {trial.number}").val_accuracy

        return run


def load_inputs(ctx: StageContext) -> TrainInputs:
    model: ModelSection = ctx.spec("model")
    config = ModelConfig(model.backbone, list(ctx.spec("classes")), model.input_size_px, model.drop_rate,
                         model.pretrained)
    ingest_dir, split_csv = ctx.input("images"), ctx.input("split")
    splits = load_splits(ingest_dir, split_csv, config.classes, config.input_size_px, names=("train", "val"))
    training = with_native_size(ctx.spec("train"), ctx.input("manifest"))
    return TrainInputs(splits.train, splits.val, config, training, ctx.spec("augment"), ctx.spec("seed"),
                       task_named(ctx.spec("task")), (ingest_dir, split_csv))


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


def search_hyperparameters(inputs: TrainInputs, study_dir: Path) -> _hpo.SearchResult:
    """Optuna over `training.hpo.space`, in the shared database when one is set, else in `study_dir`'s file."""
    hpo = inputs.training.hpo
    assert hpo is not None
    epochs = inputs.trial_epochs
    url = os.environ.get(STUDY_URL_ENV)
    rank, size = world()
    if url:
        study = _hpo.open_shared_study(url, inputs.study_name(), hpo, epochs, inputs.seed)
    elif size > 1:
        raise StageFailure(f"a distributed run needs the search in a shared database: set {STUDY_URL_ENV} and "
                           "let `python -m stages.hpo_worker` fill it first")
    else:
        study = _hpo.open_study(study_dir, inputs.study_name(), hpo, epochs, inputs.seed)
    if size > 1 and _hpo.missing_trials(study, hpo) > 0:  # every rank would run the missing trials itself
        raise StageFailure(f"the shared study has {_hpo.missing_trials(study, hpo)} of {hpo.trials} trials still "
                           "to run: run the HPO workers (k8s/<project>/pipeline/hpo-job.yaml) before training")
    result = _hpo.search(study, hpo, inputs.objective())
    if rank == 0:
        if url:
            _hpo.keep_copy(url, study.study_name, study_dir)
        _hpo.settle_study_file(study_dir)
    return result


def _code_digest() -> bytes:
    """The train stage's code dependencies (its import closure): trials scored by other code are stale."""
    closure = import_closure("stages.train", CODE_ROOT, CODE_PACKAGES)
    return b"".join((CODE_ROOT / path).read_bytes() for path in closure)


def main(ctx: StageContext) -> None:
    inputs = load_inputs(ctx)
    train, val, config, training, augment, seed = (inputs.train, inputs.val, inputs.config, inputs.training,
                                                    inputs.augment, inputs.seed)
    primary = world()[0] == 0
    if primary:
        augmentation_preview(train, augment, config, seed, ctx.output("augmentations"))
    metrics: dict[str, Any] = {}
    if training.hpo:
        trials_csv, history_png, importance_png = (ctx.output(name) for name in ("trials", "optimization_history",
                                                                                "param_importances"))
        started = time.perf_counter()
        found = search_hyperparameters(inputs, ctx.output("study"))
        if primary:
            write_csv(trials_csv, _hpo.trials_table(found.study))
            hpo_plots(found.study, history_png, importance_png, seed)
        training, config = with_params(training, config, found.best_params)
        metrics["hpo"] = {"trials": len(found.study.trials), "best_trial_val_accuracy": found.best_value,
                          **{f"best_{k}": v for k, v in found.best_params.items()}}
        print(f"train: hyperparameter search ran {found.new_trials} new trial(s) in "
              f"{time.perf_counter() - started:.1f} s; best {found.best_params} (val {found.best_value:.4f})")
    started = time.perf_counter()
    train, val = inputs.splits_at(config.input_size_px)
    result = train_model(train, val, config, training, seed, augment, task=inputs.task)
    seconds = time.perf_counter() - started
    if not result.primary:
        return  # the other ranks of a distributed run: rank 0 writes the model and the reports
    with atomic_directory(ctx.output("model")) as out:
        save_model(result.model, config, out)
    write_csv(ctx.output("accuracy"), result.history, HISTORY_FIELDS)
    kept = result.kept
    write_json(ctx.output("metrics"), {
        "kept_epoch": result.kept_epoch, "selected_by": result.selected_by, "val_loss": kept["val_loss"],
        "val_accuracy": kept["val_accuracy"], "val_macro_f1": kept["val_macro_f1"],
        "epochs_run": len(result.history), "train_images": len(train.labels), **metrics})
    print(f"train: {result.summary()} ({len(train.labels)} images, {world()[1]} process(es), {seconds:.1f} s)")


if __name__ == "__main__":
    from core.contracts.classification.train import CONTRACT

    run_stage(CONTRACT, main)
