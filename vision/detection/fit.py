"""The Lightning engine for detectors: the spec's optimizer and schedule (the same as classification's),
torchvision FCOS's losses, validation mAP every epoch, and the weights of the best epoch by
`train.select_by` (validation mAP50-95 unless the spec says val_loss). Deterministic on CPU: seeded,
deterministic algorithms, seeded augmentations, single-process loading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import albumentations as A
import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Dataset

from core.spec.training import AugmentSection, TrainSection
from runtime.detections import Decoding, detect_batch
from vision.detection.augment import detection_pipeline
from vision.detection.data import DetectionSplit, LetterboxedImages, collate_for_training
from vision.detection.distill import DetectionTeacher, imitation_loss
from vision.detection.metrics import as_prediction, map_metric
from vision.detection.model import Detector
from vision.detection.tiles import TiledImages, TileSampling, plan_tiles
from vision.training.engine import (
    FitResult,
    History,
    optimizer_for,
    quiet_lightning,
    run_fit,
    scheduler_for,
)

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_map", "val_map50", "lr")
SELECTION_MODE = {"val_loss": "min", "val_map": "max"}
EVAL_BATCH = 16
DEFAULT_SAMPLING = TileSampling()


class DetectorModule(L.LightningModule):
    def __init__(self, model: Detector, training: TrainSection, decoding: Decoding,
                 teacher: DetectionTeacher | None = None):
        super().__init__()
        self.model, self.training, self.decoding = model, training, decoding
        self.teacher = teacher
        self.val_map = map_metric(max_detections=decoding.max_detections)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model(x)

    def _loss(self, x: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, tuple]:
        outputs = self(x.contiguous(memory_format=torch.channels_last))
        return sum(self.model.loss(outputs, targets).values()), outputs

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        x, targets = batch
        loss, outputs = self._loss(x, targets)
        if self.teacher is not None:
            with torch.no_grad():
                guide = self.teacher.model.eval()(x.contiguous(memory_format=torch.channels_last))
            imitation = sum(imitation_loss(outputs, guide, self.teacher.temperature).values())
            loss = (1 - self.teacher.alpha) * loss + self.teacher.alpha * imitation
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        x, targets = batch
        loss, outputs = self._loss(x, targets)
        self.log("val_loss", loss, prog_bar=True, batch_size=len(x), sync_dist=True)
        found = detect_batch(*(o.detach().float().numpy() for o in outputs[:3]), self.decoding)
        self.val_map.update([as_prediction(f) for f in found], targets)

    def on_validation_epoch_end(self) -> None:
        figures = self.val_map.compute()
        self.log("val_map", max(float(figures["map"]), 0.0), prog_bar=True, sync_dist=True)
        self.log("val_map50", max(float(figures["map_50"]), 0.0), sync_dist=True)
        self.val_map.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = optimizer_for([p for p in self.model.parameters() if p.requires_grad], self.training)
        return {"optimizer": optimizer, "lr_scheduler": scheduler_for(optimizer, self.training)}


@dataclass(frozen=True)
class DetectorFit(FitResult):
    """A detector's fit (vision.training.engine.FitResult)."""

    def summary(self) -> str:
        kept = self.kept
        return (f"kept epoch {self.kept_epoch} of {len(self.history)} (train.select_by: {self.selected_by}): "
                f"val mAP50-95 {kept['val_map']:.4f}, mAP50 {kept['val_map50']:.4f}, val loss {kept['val_loss']:.4f}")


def views(split: DetectionSplit, decoding: Decoding, tiles: TileSampling, seed: int,
          pipeline: A.Compose | None = None) -> Dataset:
    """What the network reads of a split: each image letterboxed whole, or a tiled detector's sampled tiles."""
    if decoding.tiling is None:
        return LetterboxedImages(split, decoding.input_wh, pipeline)
    return TiledImages(split, plan_tiles(split, decoding.tiling, tiles, seed), decoding.input_wh, tiles.min_visibility,
                       pipeline)


# Eight parameters, as classification's fit: data, settings and seed, with the optional hooks keyword-only.
def fit_detector(model: Detector, train: DetectionSplit, val: DetectionSplit, training: TrainSection,
                 decoding: Decoding, seed: int, augment: AugmentSection | None = None, *, min_visibility: float = 0.3,
                 callbacks: tuple[Callback, ...] = (), progress: bool = True, label: str = "train",
                 teacher: DetectionTeacher | None = None, tiles: TileSampling = DEFAULT_SAMPLING) -> DetectorFit:
    """Train `model` in place for `training.epochs` (imitating `teacher` when given); return it with the weights
    of its best epoch. A tiled detector (`decoding.tiling`) trains and validates on tiles sampled by `tiles`."""
    L.seed_everything(seed, workers=True, verbose=False)
    quiet_lightning()
    pipeline = detection_pipeline(augment, decoding.input_wh, min_visibility, seed)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(views(train, decoding, tiles, seed, pipeline), batch_size=training.batch_size,
                              shuffle=True, generator=generator, collate_fn=collate_for_training)
    val_loader = DataLoader(views(val, decoding, tiles, seed + 1), batch_size=EVAL_BATCH,
                            collate_fn=collate_for_training)
    model.to(memory_format=torch.channels_last).train()
    module = DetectorModule(model, training, decoding, teacher)
    history = History(HISTORY_FIELDS[1:-1])
    monitor = training.selection("detection")
    fitted = run_fit(module, (train_loader, val_loader), training, (monitor, SELECTION_MODE[monitor]), history,
                     callbacks, progress, label, ("val_map", "mAP50-95"))
    if fitted.state is None:
        return DetectorFit(module.model.eval(), history.rows, len(history.rows), monitor, primary=False)
    module.load_state_dict(fitted.state)
    module.model.to(memory_format=torch.contiguous_format)
    return DetectorFit(module.model.eval(), history.rows, fitted.kept_epoch, monitor)
