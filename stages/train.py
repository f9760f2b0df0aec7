"""train: fit the spec's timm backbone with Lightning on the training split, keep the best epoch.

With `train.hpo` set, an optuna search (stages/_hpo.py) picks the hyperparameters
first and its best trial's values train the final model. Deterministic on CPU
(seeded, deterministic algorithms, seeded augmentations, single-process data
loading from memory): the same inputs give the same weights, byte for byte.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch.nn import functional as F
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader

from compiler.fsutil import atomic_directory
from compiler.spec.training import AugmentSection, ModelSection, TrainSection
from stages import _hpo
from stages._augment import training_pipeline
from stages._cli import StageContext, run_stage, write_csv, write_json
from stages._dataset import AugmentedImages, SplitData, load_split, tensor_dataset
from stages._model import ModelConfig, build_model, save_model
from stages._train_reports import augmentation_preview, hpo_plots
from stages.registry import STAGES_BY_NAME

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr")


class Classifier(L.LightningModule):
    """Cross-entropy training of any timm classifier with the spec's optimizer and schedule."""

    def __init__(self, model: torch.nn.Module, train_cfg: TrainSection, bn_loader: DataLoader):
        super().__init__()
        self.model, self.cfg, self.bn_loader = model, train_cfg, bn_loader

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=self.cfg.label_smoothing)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True, batch_size=len(y))
        self.log("val_accuracy", (logits.argmax(1) == y).float().mean(), prog_bar=True, batch_size=len(y))

    def on_validation_epoch_start(self) -> None:
        """Recompute BatchNorm statistics over the whole training split before validating.

        The running statistics are an exponential average over recent steps; on a small (or pruned)
        training set an epoch has only a few steps, so they lag the weights and the model in eval mode
        scores near chance while its training loss is near zero. One forward pass over the training data
        (torch's own `update_bn`, as used for SWA) makes validation, model selection and the saved model
        use statistics that match the weights. The pass sees the images without augmentation: those are
        what the model meets in evaluation and serving.
        """
        if not self.trainer.sanity_checking:
            update_bn(self.bn_loader, self.model)

    def configure_optimizers(self):
        optimizer = _optimizer(self.model.parameters(), self.cfg)
        return {"optimizer": optimizer, "lr_scheduler": _scheduler(optimizer, self.cfg)}


def _optimizer(parameters, cfg: TrainSection) -> torch.optim.Optimizer:
    opt = cfg.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(parameters, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    cls = torch.optim.AdamW if opt.name == "adamw" else torch.optim.Adam
    return cls(parameters, lr=opt.lr, weight_decay=opt.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainSection) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: optional linear warm-up, then cosine to zero, step decay, or constant."""
    warmup = min(cfg.scheduler.warmup_epochs, cfg.epochs - 1)
    rest = cfg.epochs - warmup
    sched = torch.optim.lr_scheduler
    if cfg.scheduler.name == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=max(rest, 1))
    elif cfg.scheduler.name == "step":
        main = sched.MultiStepLR(optimizer, milestones=[max(rest // 2, 1), max(3 * rest // 4, 1)], gamma=0.1)
    else:
        main = sched.ConstantLR(optimizer, factor=1.0)
    if warmup == 0:
        return main
    ramp = sched.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), total_iters=warmup)
    return sched.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


class _History(Callback):
    """One row per epoch with the figures people plot (Lightning's CSV logger splits them over rows)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self._lr = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._lr = float(trainer.optimizers[0].param_groups[0]["lr"])  # the rate this epoch trains with

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        self.rows.append({
            "epoch": trainer.current_epoch + 1,
            "train_loss": round(float(metrics["train_loss"]), 6),
            "val_loss": round(float(metrics["val_loss"]), 6),
            "val_accuracy": round(float(metrics["val_accuracy"]), 6),
            "lr": float(f"{self._lr:.6g}"),
        })


@dataclass(frozen=True)
class TrainResult:
    model: torch.nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_val_accuracy: float


def _quiet_lightning() -> None:
    """Drop Lightning's start-up chatter (accelerator inventory, adverts); warnings still show."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


def train_model(train: SplitData, val: SplitData, config: ModelConfig, cfg: TrainSection, seed: int,
                augment: AugmentSection | None = None, *, callbacks: tuple[Callback, ...] = (),
                progress: bool = True) -> TrainResult:
    """Train and return the weights of the epoch with the lowest validation loss.

    Loss, not accuracy, picks the epoch: on a validation split of a few hundred images accuracy moves in
    steps of one image and often peaks early by chance, while the loss keeps ranking epochs.

    `callbacks` are extra Lightning callbacks (the HPO pruning hook); `augment` None trains on the images as
    they are.
    """
    L.seed_everything(seed, workers=True, verbose=False)
    _quiet_lightning()
    clean = tensor_dataset(train)
    pipeline = training_pipeline(augment, config.input_size_px, seed) if augment else None
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(AugmentedImages(train, pipeline) if pipeline else clean, batch_size=cfg.batch_size,
                              shuffle=True, generator=generator)
    module = Classifier(build_model(config), cfg, bn_loader=DataLoader(clean, batch_size=256))
    val_loader = DataLoader(tensor_dataset(val), batch_size=256)
    history = _History()
    with tempfile.TemporaryDirectory(prefix="autodl-ckpt-") as ckpt_dir:
        best = ModelCheckpoint(dirpath=ckpt_dir, monitor="val_loss", mode="min", save_top_k=1,
                               save_weights_only=True, filename="best")
        all_callbacks: list[Callback] = [history, best, *callbacks]
        if cfg.early_stopping_patience:
            all_callbacks.append(EarlyStopping("val_loss", mode="min", patience=cfg.early_stopping_patience))
        trainer = L.Trainer(max_epochs=cfg.epochs, accelerator="cpu", devices=1, deterministic=True,
                            logger=False, callbacks=all_callbacks, enable_model_summary=False,
                            enable_progress_bar=progress, num_sanity_val_steps=0, default_root_dir=ckpt_dir)
        with warnings.catch_warnings():
            # Data is already in memory as tensors: extra loader workers would only add start-up cost.
            warnings.filterwarnings("ignore", ".*does not have many workers.*", PossibleUserWarning)
            # Raised inside lightning's own pytree helper under torch >= 2.14; nothing a user can act on.
            warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
            trainer.fit(module, train_loader, val_loader)
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    best_row = min(history.rows, key=lambda row: row["val_loss"])
    return TrainResult(module.model.eval(), history.rows, int(best_row["epoch"]), best_row["val_accuracy"])


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
