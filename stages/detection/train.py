"""train (detection): fit the single-stage detector (timm backbone, FPN, FCOS head) with Lightning on the pruned
training split and keep the epoch of best validation mAP50-95.

With `train.hpo` set, an optuna search over the same spec section runs first (objective: validation
mAP50-95 after `epochs_per_trial` epochs, pruned per epoch), in the stage's resumable SQLite study; its best
trial's values train the final model. Deterministic on CPU: the same inputs give the same weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import lightning as L

from core.fsutil import atomic_directory, write_csv, write_json
from core.imports import CODE_PACKAGES, CODE_ROOT, import_closure
from core.spec.detection import DetectionSection
from core.spec.training import AugmentSection, ModelSection, TrainSection
from runtime.detections import Decoding
from stages.runtime import StageContext, run_stage
from vision.detection.data import DetectionSplit, load_detection_split
from vision.detection.fit import HISTORY_FIELDS, DetectorFit, fit_detector
from vision.detection.model import DetectorConfig, build_detector
from vision.detection.reports import augmentation_preview
from vision.detection.store import save_detector
from vision.training import hpo as _hpo
from vision.training.pretrained import offline_weights_for
from vision.training.reports import hpo_plots


@dataclass(frozen=True)
class DetectionInputs:
    """Everything a trial's score depends on."""

    train: DetectionSplit
    val: DetectionSplit
    config: DetectorConfig
    pretrained: str | None
    training: TrainSection
    detection: DetectionSection
    augment: AugmentSection | None
    seed: int

    def decoding(self, config: DetectorConfig | None = None) -> Decoding:
        config = config or self.config
        return Decoding(config.input_wh, config.strides, self.detection.score_threshold, self.detection.nms_iou,
                        self.detection.max_detections)

    def fit(self, config: DetectorConfig, pretrained: str | None, training: TrainSection, **hooks: Any) -> DetectorFit:
        """A fresh detector for `config`, its new layers initialised from the seed, fitted."""
        L.seed_everything(self.seed, workers=True, verbose=False)
        model = build_detector(config, pretrained)
        return fit_detector(model, self.train, self.val, training, self.decoding(config), self.seed, self.augment,
                            min_visibility=self.detection.min_visibility, **hooks)

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
        trial_training = self.training.model_copy(update={"epochs": self.training.hpo.epochs_per_trial or
                                                          self.training.epochs, "hpo": None})

        def run(trial: Any, params: dict[str, Any]) -> float:
            training, config, pretrained = with_params(trial_training, self.config, self.pretrained, params)
            pruning = PyTorchLightningPruningCallback(trial, monitor="val_map")
            result = self.fit(config, pretrained, training, callbacks=(pruning,),
                              label=f"train: search trial {trial.number}")
            return result.kept["val_map"]

        return run


def with_params(training: TrainSection, config: DetectorConfig, pretrained: str | None, params: dict[str, Any]
                ) -> tuple[TrainSection, DetectorConfig, str | None]:
    """The settings with searched values in place (a searched backbone starts from its offline ImageNet weights
    when there are some)."""
    optimizer = training.optimizer.model_copy(update={k: params[k] for k in ("lr", "weight_decay") if k in params})
    top = {k: params[k] for k in ("batch_size",) if k in params}
    if "backbone" in params:
        config, pretrained = replace(config, backbone=params["backbone"]), offline_weights_for(params["backbone"])
    return training.model_copy(update={"optimizer": optimizer, **top}), config, pretrained


def load_inputs(ctx: StageContext) -> DetectionInputs:
    model: ModelSection = ctx.spec("model")
    detection: DetectionSection = ctx.spec("detection")
    classes = list(ctx.spec("classes"))
    config = DetectorConfig(model.backbone, tuple(classes), detection.size_wh(), tuple(detection.strides),
                            detection.fpn_channels, detection.head_convs, detection.center_sampling_radius)
    ingest, boxes, split = ctx.input("images"), ctx.input("boxes"), ctx.input("split")
    return DetectionInputs(load_detection_split(ingest, boxes, split, "train", classes),
                           load_detection_split(ingest, boxes, split, "val", classes), config, model.pretrained,
                           ctx.spec("train"), detection, ctx.spec("augment"), ctx.spec("seed"))


def search(inputs: DetectionInputs, ctx: StageContext) -> tuple[TrainSection, DetectorConfig, str | None,
                                                                 dict[str, Any]]:
    hpo = inputs.training.hpo
    assert hpo is not None
    started = time.perf_counter()
    study_dir = ctx.output("study")
    epochs = hpo.epochs_per_trial or inputs.training.epochs
    study = _hpo.open_study(study_dir, inputs.study_name(), hpo, epochs, inputs.seed)
    found = _hpo.search(study, hpo, inputs.objective())
    _hpo.settle_study_file(study_dir)
    write_csv(ctx.output("trials"), _hpo.trials_table(found.study))
    hpo_plots(found.study, ctx.output("optimization_history"), ctx.output("param_importances"), inputs.seed)
    print(f"train: hyperparameter search ran {found.new_trials} new trial(s) in {time.perf_counter() - started:.1f} "
          f"s; best {found.best_params} (val mAP50-95 {found.best_value:.4f})")
    training, config, pretrained = with_params(inputs.training, inputs.config, inputs.pretrained, found.best_params)
    return training, config, pretrained, {"trials": len(found.study.trials), "best_trial_val_map": found.best_value,
                                          **{f"best_{k}": v for k, v in found.best_params.items()}}


def main(ctx: StageContext) -> None:
    inputs = load_inputs(ctx)
    augmentation_preview(inputs.train, inputs.augment, inputs.config, inputs.detection, inputs.seed,
                         ctx.output("augmentations"))
    training, config, pretrained, searched = inputs.training, inputs.config, inputs.pretrained, {}
    if training.hpo:
        training, config, pretrained, searched = search(inputs, ctx)
    started = time.perf_counter()
    result = inputs.fit(config, pretrained, training)
    seconds = time.perf_counter() - started
    with atomic_directory(ctx.output("model")) as out:
        save_detector(result.model, inputs.decoding(config), out)
    write_csv(ctx.output("map"), result.history, HISTORY_FIELDS)
    kept = result.kept
    write_json(ctx.output("metrics"), {
        "kept_epoch": result.kept_epoch, "selected_by": result.selected_by, "val_loss": kept["val_loss"],
        "val_map": kept["val_map"], "val_map50": kept["val_map50"], "epochs_run": len(result.history),
        "train_images": len(inputs.train), "train_boxes": inputs.train.instances(),
        **({"hpo": searched} if searched else {})})
    print(f"train: {result.summary()} ({len(inputs.train)} images, {inputs.train.instances()} boxes, "
          f"{seconds:.1f} s)")


if __name__ == "__main__":
    from core.contracts.detection.train import CONTRACT

    run_stage(CONTRACT, main)
