"""train: fit the spec's timm backbone with Lightning on the training split, keep the best epoch.

Deterministic on CPU (seeded, deterministic algorithms, single-process data
loading from memory): the same inputs give the same weights, byte for byte.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch.nn import functional as F
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader

from compiler.fsutil import atomic_directory
from compiler.spec.training import ModelSection, TrainSection
from stages._cli import StageContext, run_stage, write_json
from stages._dataset import SplitData, load_split, tensor_dataset
from stages._model import ModelConfig, build_model, save_model

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_accuracy", "lr")


class Classifier(L.LightningModule):
    """Cross-entropy training of any timm classifier with the spec's optimizer and schedule."""

    def __init__(self, model: torch.nn.Module, train_cfg: TrainSection):
        super().__init__()
        self.model, self.cfg = model, train_cfg

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
        use statistics that match the weights.
        """
        if not self.trainer.sanity_checking:
            update_bn(self.trainer.train_dataloader, self.model)

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


def train_model(train: SplitData, val: SplitData, config: ModelConfig, cfg: TrainSection, seed: int) -> TrainResult:
    """Train from scratch and return the weights of the epoch with the best validation accuracy."""
    L.seed_everything(seed, workers=True, verbose=False)
    _quiet_lightning()
    module = Classifier(build_model(config), cfg)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(tensor_dataset(train), batch_size=cfg.batch_size, shuffle=True, generator=generator)
    val_loader = DataLoader(tensor_dataset(val), batch_size=256)
    history = _History()
    with tempfile.TemporaryDirectory(prefix="autodl-ckpt-") as ckpt_dir:
        best = ModelCheckpoint(dirpath=ckpt_dir, monitor="val_accuracy", mode="max", save_top_k=1,
                               save_weights_only=True, filename="best")
        callbacks: list[Callback] = [history, best]
        if cfg.early_stopping_patience:
            callbacks.append(EarlyStopping("val_accuracy", mode="max", patience=cfg.early_stopping_patience))
        trainer = L.Trainer(max_epochs=cfg.epochs, accelerator="cpu", devices=1, deterministic=True,
                            logger=False, callbacks=callbacks, enable_model_summary=False,
                            num_sanity_val_steps=0, default_root_dir=ckpt_dir)
        with warnings.catch_warnings():
            # Data is already in memory as tensors: extra loader workers would only add start-up cost.
            warnings.filterwarnings("ignore", ".*does not have many workers.*", PossibleUserWarning)
            # Raised inside lightning's own pytree helper under torch >= 2.14; nothing a user can act on.
            warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
            trainer.fit(module, train_loader, val_loader)
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    best_row = max(history.rows, key=lambda row: row["val_accuracy"])
    return TrainResult(module.model.eval(), history.rows, int(best_row["epoch"]), best_row["val_accuracy"])


def main(ctx: StageContext) -> None:
    params = ctx.params
    model_cfg = ModelSection.model_validate(params["model"])
    train_cfg = TrainSection.model_validate(params["train"])
    config = ModelConfig(model_cfg.backbone, list(params["classes"]), model_cfg.input_size_px, model_cfg.drop_rate,
                         model_cfg.pretrained)
    ingest_dir, split_csv = ctx.dep(0), ctx.dep(1) / "split.csv"
    train = load_split(ingest_dir, split_csv, "train", config.classes, config.input_size_px)
    val = load_split(ingest_dir, split_csv, "val", config.classes, config.input_size_px)
    started = time.perf_counter()
    result = train_model(train, val, config, train_cfg, params["seed"])
    seconds = time.perf_counter() - started
    with atomic_directory(ctx.out()) as out:
        save_model(result.model, config, out)
    _write_history(ctx.plot(), result.history)
    write_json(ctx.metric(), {"best_val_accuracy": result.best_val_accuracy, "best_epoch": result.best_epoch,
                              "epochs_run": len(result.history), "train_images": len(train.labels)})
    print(f"train: best val accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch} "
          f"({len(train.labels)} images, {seconds:.1f} s)")


def _write_history(path: Path, rows: list[dict[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    run_stage("train", main)
