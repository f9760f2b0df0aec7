"""train: fit the spec's timm backbone with Lightning on the training split, keep the best epoch.

With `train.hpo` set, an optuna search (stages/_hpo.py) picks the hyperparameters
first and its best trial's values train the final model. Deterministic on CPU
(seeded, deterministic algorithms, seeded augmentations, single-process data
loading from memory): the same inputs give the same weights, byte for byte.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from compiler.fsutil import atomic_directory
from compiler.spec.training import AugmentSection, ModelSection, TrainSection
from stages import _hpo
from stages._cli import StageContext, run_stage, write_csv, write_json
from stages._dataset import SplitData, load_split
from stages._fit import HISTORY_FIELDS, TrainResult, fit
from stages._model import ModelConfig, build_model, save_model
from stages._train_reports import augmentation_preview, hpo_plots
from stages.registry import STAGES_BY_NAME


def train_model(train: SplitData, val: SplitData, config: ModelConfig, cfg: TrainSection, seed: int,
                augment: AugmentSection | None = None, *, callbacks: tuple[Callback, ...] = (),
                progress: bool = True) -> TrainResult:
    """A fresh model for `config` (from scratch or the offline ImageNet weights), fitted (see `_fit.fit`)."""
    L.seed_everything(seed, workers=True, verbose=False)
    return fit(build_model(config), train, val, cfg, seed, augment, callbacks=callbacks, progress=progress)


def with_params(cfg: TrainSection, config: ModelConfig, params: dict[str, Any]) -> tuple[TrainSection, ModelConfig]:
    """The training settings with searched values put in place (`lr` and `weight_decay` live in `optimizer`)."""
    optimizer = cfg.optimizer.model_copy(update={k: params[k] for k in ("lr", "weight_decay") if k in params})
    top = {k: params[k] for k in ("batch_size", "label_smoothing") if k in params}
    new_config = replace(config, drop_rate=params["drop_rate"]) if "drop_rate" in params else config
    return cfg.model_copy(update={"optimizer": optimizer, **top}), new_config


def search_hyperparameters(train: SplitData, val: SplitData, config: ModelConfig, cfg: TrainSection,
                           augment: AugmentSection | None, seed: int, study_dir: Path) -> _hpo.SearchResult:
    """Optuna over `cfg.hpo.space`; each trial trains `epochs_per_trial` epochs and may be pruned per epoch."""
    from optuna_integration import PyTorchLightningPruningCallback

    hpo = cfg.hpo
    assert hpo is not None
    epochs = hpo.epochs_per_trial or cfg.epochs
    trial_cfg = cfg.model_copy(update={"epochs": epochs, "hpo": None})
    name = "hpo-" + _hpo.fingerprint(_code_digest(), train.images.tobytes(), train.labels.tobytes(),
                                     val.images.tobytes(), val.labels.tobytes(), asdict(config),
                                     cfg.model_dump(mode="json"), augment.model_dump(mode="json") if augment else None,
                                     seed)
    study = _hpo.open_study(study_dir, name, hpo, epochs, seed)

    def objective(trial: Any, params: dict[str, Any]) -> float:
        run_cfg, run_config = with_params(trial_cfg, config, params)
        pruning = PyTorchLightningPruningCallback(trial, monitor="val_accuracy")
        return train_model(train, val, run_config, run_cfg, seed, augment, callbacks=(pruning,),
                           progress=False).best_val_accuracy

    result = _hpo.search(study, hpo, objective)
    _hpo.settle_study_file(study_dir)
    return result


def _code_digest() -> bytes:
    """The train stage's source files (as declared in the registry): trials scored by other code are stale."""
    root = Path(__file__).resolve().parents[1]
    return b"".join((root / path).read_bytes() for path in STAGES_BY_NAME["train"].code)


def main(ctx: StageContext) -> None:
    params, seed = ctx.params, ctx.params["seed"]
    model_cfg = ModelSection.model_validate(params["model"])
    train_cfg = TrainSection.model_validate(params["train"])
    augment = AugmentSection.model_validate(params["augment"])
    config = ModelConfig(model_cfg.backbone, list(params["classes"]), model_cfg.input_size_px, model_cfg.drop_rate,
                         model_cfg.pretrained)
    ingest_dir, split_csv = ctx.dep(0), ctx.dep(1) / "split.csv"
    train = load_split(ingest_dir, split_csv, "train", config.classes, config.input_size_px)
    val = load_split(ingest_dir, split_csv, "val", config.classes, config.input_size_px)
    augmentation_preview(train, augment, config, seed, ctx.path(ctx.info.reports[0]))
    metrics: dict[str, Any] = {}
    if train_cfg.hpo:
        hpo_outputs = next(when for when in ctx.info.optional if when.key == "train.hpo")
        trials_csv, history_png, importance_png = (ctx.path(path) for path in hpo_outputs.reports)
        started = time.perf_counter()
        found = search_hyperparameters(train, val, config, train_cfg, augment, seed, ctx.path(hpo_outputs.persist[0]))
        write_csv(trials_csv, _hpo.trials_table(found.study))
        hpo_plots(found.study, history_png, importance_png, seed)
        train_cfg, config = with_params(train_cfg, config, found.best_params)
        metrics["hpo"] = {"trials": len(found.study.trials), "best_trial_val_accuracy": found.best_value,
                          **{f"best_{k}": v for k, v in found.best_params.items()}}
        print(f"train: hyperparameter search ran {found.new_trials} new trial(s) in "
              f"{time.perf_counter() - started:.1f} s; best {found.best_params} (val {found.best_value:.4f})")
    started = time.perf_counter()
    result = train_model(train, val, config, train_cfg, seed, augment)
    seconds = time.perf_counter() - started
    with atomic_directory(ctx.out()) as out:
        save_model(result.model, config, out)
    write_csv(ctx.plot(), result.history, HISTORY_FIELDS)
    write_json(ctx.metric(), {"best_val_accuracy": result.best_val_accuracy, "best_epoch": result.best_epoch,
                              "epochs_run": len(result.history), "train_images": len(train.labels), **metrics})
    print(f"train: best val accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch} "
          f"({len(train.labels)} images, {seconds:.1f} s)")


if __name__ == "__main__":
    run_stage("train", main)
