"""train (detection): fit the single-stage detector (timm backbone, FPN, FCOS head) with Lightning on the pruned
training split and keep the epoch of best validation mAP50-95 (stages.training.train).

With `train.hpo` set, an optuna search over the same spec section runs first (objective: validation
mAP50-95 after `epochs_per_trial` epochs, pruned per epoch), in the stage's resumable SQLite study or the
shared database AUTODL_OPTUNA_STORAGE names; its best trial's values train the final model. Deterministic on
CPU: the same inputs give the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L

from core.imports import CODE_PACKAGES, CODE_ROOT, import_closure
from core.model_choice import ModelChoice
from core.spec.detection import DetectionSection
from core.spec.training import AugmentSection, TrainSection, offline_weights
from runtime.detections import Decoding
from stages.runtime import StageContext, run_stage
from stages.training import SearchFromTrainSection, chosen_model, model_record, train
from vision.detection.data import DetectionSplit, load_detection_split
from vision.detection.fit import HISTORY_FIELDS, DetectorFit, fit_detector
from vision.detection.model import DetectorConfig, build_detector
from vision.detection.reports import augmentation_preview
from vision.detection.settings import spec_decoding, spec_sampling
from vision.detection.store import save_detector
from vision.detection.tiles import plan_tiles
from vision.training import hpo as _hpo
from vision.training.budget import BudgetPlan
from vision.training.engine import FitResult


@dataclass(frozen=True)
class DetectionInputs(SearchFromTrainSection):
    """Everything a trial's score depends on."""

    train: DetectionSplit
    val: DetectionSplit
    config: DetectorConfig
    pretrained: str | None
    training: TrainSection
    detection: DetectionSection
    augment: AugmentSection | None
    seed: int
    choice: ModelChoice | None = None
    """What `model: auto` decided, and why (None: the spec named the backbone and its weights)."""

    def decoding(self, config: DetectorConfig | None = None) -> Decoding:
        config = config or self.config
        return replace(spec_decoding(self.detection), input_wh=config.input_wh, strides=config.strides)

    def fit(self, config: DetectorConfig, pretrained: str | None, training: TrainSection, **hooks: Any) -> DetectorFit:
        """A fresh detector for `config`, its new layers initialised from the seed, fitted."""
        L.seed_everything(self.seed, workers=True, verbose=False)
        model = build_detector(config, pretrained)
        return fit_detector(model, self.train, self.val, training, self.decoding(config), self.seed, self.augment,
                            min_visibility=self.detection.min_visibility, tiles=spec_sampling(self.detection.tiling),
                            **hooks)

    def study_name(self) -> str:
        closure = import_closure("stages.detection.train", CODE_ROOT, CODE_PACKAGES)
        code = b"".join((CODE_ROOT / p).read_bytes() for p in closure)
        data = [(split.paths, [b.tobytes().hex() for b in split.boxes], [lab.tolist() for lab in split.labels])
                for split in (self.train, self.val)]
        return "hpo-" + _hpo.fingerprint(code, data, self.config.to_json(), self.pretrained,
                                         self.training.model_dump(mode="json"), self.detection.model_dump(mode="json"),
                                         self.augment.model_dump(mode="json") if self.augment else None, self.seed)

    def objective(self) -> _hpo.Objective:
        from optuna_integration import PyTorchLightningPruningCallback

        assert self.training.hpo is not None
        trial_training = self.training.model_copy(update={"epochs": self.trial_epochs, "hpo": None})

        def run(trial: Any, params: dict[str, Any]) -> float:
            training, config, pretrained = with_params(trial_training, self.config, self.pretrained, params)
            pruning = PyTorchLightningPruningCallback(trial, monitor="val_map")
            result = self.fit(config, pretrained, training, callbacks=(pruning,),
                              label=f"train: search trial {trial.number}")
            return result.kept["val_map"]

        return run

    # What the generic train stage (stages.training.TrainTask) asks of a task.
    history_fields = HISTORY_FIELDS
    history_plot = "map"
    kept_figures = ("val_loss", "val_map", "val_map50")
    trial_figure = "val_map"

    def searched(self, params: dict[str, Any]) -> DetectionInputs:
        training, config, pretrained = with_params(self.training, self.config, self.pretrained, params)
        return replace(self, training=training, config=config, pretrained=pretrained)

    def preview(self, path: Path) -> None:
        augmentation_preview(self.train, self.augment, self.config, self.detection, self.seed, path)

    def final_fit(self) -> DetectorFit:
        return self.fit(self.config, self.pretrained, self.training)

    def save(self, result: FitResult, out: Path) -> None:
        save_detector(result.model, self.decoding(), out)

    def model_record(self) -> dict[str, Any]:
        return model_record(self.config.backbone, self.pretrained, self.config.input_wh, self.choice)

    def within_budget(self) -> tuple[DetectionInputs, BudgetPlan | None]:
        print("train: a detector's training has no cost model yet: train.hpo.budget_minutes stops its search "
              "when the next trial and the final training would not fit, and trains train.epochs", flush=True)
        return self, None

    def data_figures(self) -> dict[str, int]:
        figures = {"train_images": len(self.train), "train_boxes": self.train.instances()}
        tiling = self.decoding().tiling
        if tiling is not None:  # what an epoch reads: the tiles with boxes and the sampled empty ones
            figures["train_tiles"] = len(plan_tiles(self.train, tiling, spec_sampling(self.detection.tiling),
                                                    self.seed))
        return figures


def with_params(training: TrainSection, config: DetectorConfig, pretrained: str | None, params: dict[str, Any]
                ) -> tuple[TrainSection, DetectorConfig, str | None]:
    """The settings with searched values in place (a searched backbone starts from its offline ImageNet weights
    when there are some)."""
    optimizer = training.optimizer.model_copy(update={k: params[k] for k in ("lr", "weight_decay") if k in params})
    top = {k: params[k] for k in ("batch_size",) if k in params}
    if "backbone" in params:
        config, pretrained = replace(config, backbone=params["backbone"]), offline_weights(params["backbone"])
    return training.model_copy(update={"optimizer": optimizer, **top}), config, pretrained


def load_inputs(ctx: StageContext) -> DetectionInputs:
    choice = chosen_model(ctx, sized=False)  # the detector's input size is detection.input_size_px
    detection: DetectionSection = ctx.spec("detection")
    classes = list(ctx.spec("classes"))
    config = DetectorConfig(choice.backbone, tuple(classes), detection.size_wh(), tuple(detection.strides),
                            detection.fpn_channels, detection.head_convs, detection.center_sampling_radius)
    ingest, boxes, split = ctx.input("images"), ctx.input("boxes"), ctx.input("split")
    return DetectionInputs(load_detection_split(ingest, boxes, split, "train", classes),
                           load_detection_split(ingest, boxes, split, "val", classes), config, choice.pretrained,
                           ctx.spec("train"), detection, ctx.spec("augment"), ctx.spec("seed"), choice)


def main(ctx: StageContext) -> None:
    train(ctx, load_inputs(ctx))


if __name__ == "__main__":
    from core.contracts.detection.train import CONTRACT

    run_stage(CONTRACT, main)
