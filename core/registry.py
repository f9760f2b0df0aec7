"""The explicit list of stages and the named contract each one keeps with the pipeline (core.contract).

This is the single place that says which params a stage reads, which named outputs of earlier stages it
reads and what it writes. The compiler turns it into `dvc.yaml` (a stage's code dependencies are derived
from its import closure, core.imports); each stage's CLI receives exactly the params declared here and
reads and writes only the names declared here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from core.contract import ContractError, PlotInfo, StageInfo, WhenSet
from core.imports import import_closure

P = "{project}"
WEB_ASSETS = ("core/webassets/manifest.json", "core/webassets/vendor")
"""The vendored scripts and styles the Data Docs copy: a new version re-runs the stages that ship them."""
CODE_ROOT = Path(__file__).resolve().parents[1]
"""Where the pipeline's code lives: the repository root this package sits in."""
CODE_PACKAGES = ("cli", "compiler", "core", "ops", "runtime", "serving", "stages", "vision")

SEARCH_OUTPUTS = WhenSet("train.hpo", persist={"study": f"models/{P}/hpo"},
                         reports={"trials": f"reports/{P}/train/hpo/trials.csv",
                                  "optimization_history": f"reports/{P}/train/hpo/optimization_history.png",
                                  "param_importances": f"reports/{P}/train/hpo/param_importances.png"})
"""What the train stage of any task keeps when it searches: the resumable study and its reports."""

STAGES: tuple[StageInfo, ...] = (
    StageInfo(
        name="ingest",
        summary="Collect images from the spec's sources into one canonical image set and manifest",
        params=("classes", "data.sources", "data.quality.min_size_px", "data.quality.max_image_pixels",
                "data.cleaning.static_frame_flow_px"),
        outs={"images": f"data/{P}/ingest"},
        files={"manifest": f"data/{P}/ingest/manifest.csv", "quarantine": f"data/{P}/ingest/quarantine.csv",
               "skipped": f"data/{P}/ingest/skipped.csv"},
        metrics={"summary": f"reports/{P}/ingest/summary.json"},
        reads_paths_of=("data.sources",),
    ),
    StageInfo(
        name="validate",
        summary="Data-quality gate: a great-expectations suite from data.quality, run as a checkpoint",
        params=("classes", "data.quality"),
        inputs={"images": "ingest.images", "manifest": "ingest.manifest", "quarantine": "ingest.quarantine"},
        outs={"data_docs": f"reports/{P}/validate/data_docs"},
        files={"data_docs_index": f"reports/{P}/validate/data_docs/index.html"},
        reports={"result": f"reports/{P}/validate/result.json"},
        metrics={"summary": f"reports/{P}/validate/summary.json"},
        data_files=WEB_ASSETS,
    ),
    StageInfo(
        name="embed",
        summary="Embed every ingested image with an offline pretrained backbone (cached for clean and prune)",
        params=("data.embedding",),
        inputs={"images": "ingest.images", "manifest": "ingest.manifest", "quality": "validate.summary"},
        outs={"embeddings": f"data/{P}/embed"},
    ),
    StageInfo(
        name="clean",
        summary="Remove near-duplicates (faiss over embeddings) and flag dark, blurry or empty images",
        params=("data.cleaning.near_duplicate_cosine", "data.cleaning.remove_flagged",
                "data.quality.max_removed_fraction", "data.quality.max_conflicting_duplicates"),
        inputs={"images": "ingest.images", "manifest": "ingest.manifest", "embeddings": "embed.embeddings"},
        outs={"cleaned": f"data/{P}/clean"},
        files={"manifest": f"data/{P}/clean/manifest.csv", "rule": f"data/{P}/clean/duplicate_rule.json"},
        reports={"report": f"reports/{P}/clean/report.json", "similarity_png": f"reports/{P}/clean/similarity.png"},
        metrics={"summary": f"reports/{P}/clean/summary.json"},
        plots=(PlotInfo("similarity", f"reports/{P}/clean/similarity.csv", x="share",
                        y=("nearest_neighbour", "copy_reencoded", "copy_resized", "copy_cropped", "threshold"),
                        title="What a duplicate is here: similarity of altered copies vs nearest other image"),),
    ),
    StageInfo(
        name="split",
        summary="Split into train, validation and test: stratified, group-aware, seeded, checked for leakage",
        params=("seed", "data.split"),
        inputs={"manifest": "clean.manifest", "rule": "clean.rule", "embeddings": "embed.embeddings"},
        outs={"splits": f"data/{P}/split"},
        files={"split": f"data/{P}/split/split.csv"},
        metrics={"summary": f"reports/{P}/split/summary.json"},
    ),
    StageInfo(
        name="prune",
        summary="Keep the most useful data.pruning.budget share of each class of the training split",
        params=("seed", "data.pruning"),
        inputs={"split": "split.split", "embeddings": "embed.embeddings"},
        outs={"pruned": f"data/{P}/prune"},
        files={"split": f"data/{P}/prune/split.csv"},
        reports={"projection_png": f"reports/{P}/prune/projection.png"},
        metrics={"summary": f"reports/{P}/prune/summary.json"},
        plots=(PlotInfo("projection", f"reports/{P}/prune/projection.csv", x="x", y=("y",), template="scatter",
                        title="Training embeddings (PCA): kept vs dropped"),),
    ),
    StageInfo(
        name="train",
        summary="Train the spec's timm backbone with Lightning on the pruned training split (optuna search first "
                "when train.hpo is set)",
        params=("task", "seed", "classes", "augment", "model", "train"),
        inputs={"images": "ingest.images", "manifest": "ingest.manifest", "split": "prune.split"},
        outs={"model": f"models/{P}/train"},
        reports={"augmentations": f"reports/{P}/train/augmentations.png"},
        metrics={"metrics": f"reports/{P}/train/metrics.json"},
        plots=(PlotInfo("accuracy", f"reports/{P}/train/history.csv", x="epoch", y=("val_accuracy",),
                        title="Validation accuracy per epoch"),
               PlotInfo("loss", f"reports/{P}/train/history.csv", x="epoch", y=("train_loss", "val_loss"),
                        title="Training and validation loss per epoch")),
        optional=(SEARCH_OUTPUTS,),
    ),
    StageInfo(
        name="evaluate",
        summary="Measure the trained model on the test split: accuracy, macro-F1, per-class figures, confusions "
                "and a gallery of mistakes",
        params=("task",),
        inputs={"images": "ingest.images", "split": "split.split", "model": "train.model"},
        reports={"per_class": f"reports/{P}/evaluate/per_class.json",
                 "top_confusions": f"reports/{P}/evaluate/top_confusions.json",
                 "misclassified": f"reports/{P}/evaluate/misclassified.png"},
        metrics={"metrics": f"reports/{P}/evaluate/metrics.json"},
        plots=(PlotInfo("confusion", f"reports/{P}/evaluate/confusion.csv", x="actual", y=("predicted",),
                        template="confusion", title="Confusion matrix (test split)"),),
    ),
    StageInfo(
        name="compress",
        summary="Prune (torch-pruning) and distill the trained model toward compress.budget; export every "
                "candidate to ONNX and check it against torch",
        params=("seed", "augment", "train.optimizer", "train.scheduler", "train.batch_size", "train.epochs",
                "train.label_smoothing", "train.select_by", "train.balance", "compress.budget", "compress.methods",
                "compress.importance", "compress.prune_steps", "compress.max_prune_ratio", "compress.finetune_epochs",
                "compress.finetune_min_steps", "compress.distillation", "compress.student", "compress.allocation",
                "compress.sparse_training", "compress.quantization", "compress.calibration_images", "target"),
        inputs={"images": "ingest.images", "split": "prune.split", "model": "train.model"},
        outs={"candidates": f"models/{P}/compress"},
        files={"variants": f"models/{P}/compress/variants.json"},
        metrics={"summary": f"reports/{P}/compress/summary.json"},
        plots=(PlotInfo("rounds", f"reports/{P}/compress/rounds.csv", x="params", y=("val_accuracy",),
                        template="scatter", title="Pruning rounds: parameters vs validation accuracy"),),
    ),
    StageInfo(
        name="export",
        summary="Quantize the candidates for target.hardware, measure every variant with ONNX Runtime and keep "
                "the fastest within compress.budget as the deployable model",
        params=("compress.budget", "compress.methods", "compress.calibration_images", "compress.quantization",
                "target"),
        inputs={"images": "ingest.images", "split": "prune.split", "candidates": "compress.candidates",
                "variants": "compress.variants", "model": "train.model"},
        outs={"deployable": f"models/{P}/export"},
        reports={"choice": f"reports/{P}/export/choice.json", "pareto": f"reports/{P}/export/pareto.png"},
        metrics={"summary": f"reports/{P}/export/summary.json"},
        plots=(PlotInfo("variants", f"reports/{P}/export/variants.csv", x="latency_ms_1_thread",
                        y=("val_accuracy",), template="scatter", title="Variants: latency vs validation accuracy"),),
    ),
    StageInfo(
        name="dependability",
        summary="Measure the deployable ONNX model where the test split does not look: out-of-distribution "
                "detection, corruptions, calibration, and Grad-CAM checked with ROAD",
        params=("seed", "augment", "dependability.ood.detector", "dependability.ood.ood_sources",
                "dependability.robustness.corruptions", "dependability.robustness.severities", "dependability.explain",
                "active_learning.ensemble"),
        inputs={"images": "ingest.images", "split": "prune.split", "deployable": "export.deployable",
                "candidates": "compress.candidates"},
        optional_inputs={"ensemble": ("ensemble.members", "active_learning.ensemble")},
        outs={"serving_state": f"models/{P}/dependability"},
        reports={"ood": f"reports/{P}/dependability/ood.json",
                 "robustness_png": f"reports/{P}/dependability/robustness.png",
                 "reliability_png": f"reports/{P}/dependability/reliability.png",
                 "ood_scores_png": f"reports/{P}/dependability/ood_scores.png",
                 "gradcam_png": f"reports/{P}/dependability/gradcam.png"},
        metrics={"metrics": f"reports/{P}/dependability/metrics.json"},
        plots=(PlotInfo("robustness", f"reports/{P}/dependability/robustness.csv", x="accuracy",
                        y=("condition",), template="bar_horizontal", title="Test accuracy per corruption and severity"),
               PlotInfo("reliability", f"reports/{P}/dependability/reliability.csv", x="confidence",
                        y=("accuracy",), title="Reliability after temperature scaling (test split)")),
        reads_paths_of=("dependability.ood.ood_sources",),
    ),
    StageInfo(
        name="gate",
        summary="Judge every measured figure against the spec's thresholds, write the verdict and the "
                "dependability report, and fail on any unmet threshold",
        params=("dependability.min_accuracy", "dependability.min_class_recall", "dependability.ood.min_auroc",
                "dependability.ood.max_accepted_fraction", "dependability.robustness.max_accuracy_drop",
                "dependability.calibration", "compress.budget"),
        inputs={"figures": "dependability.metrics", "export_summary": "export.summary", "ood": "dependability.ood",
                "robustness_png": "dependability.robustness_png", "reliability_png": "dependability.reliability_png",
                "ood_scores_png": "dependability.ood_scores_png", "gradcam_png": "dependability.gradcam_png",
                "deployable": "export.deployable", "serving_state": "dependability.serving_state"},
        reports={"report_html": f"reports/{P}/dependability.html", "summary_md": f"reports/{P}/gate/summary.md"},
        metrics={"verdict": f"reports/{P}/gate/verdict.json"},
        data_files=("vision/dependability/templates/dependability.html.j2",),
    ),
    StageInfo(
        name="promote",
        summary="On a passing gate only: bundle the deployable model, record its content address in "
                "k8s/<project>/promoted.yaml, render the serving manifests for it and write the model card",
        params=("serving.storage_uri",),
        inputs={"verdict": "gate.verdict", "deployable": "export.deployable",
                "serving_state": "dependability.serving_state", "evaluation": "evaluate.metrics",
                "export_summary": "export.summary", "figures": "dependability.metrics"},
        outs={"release": f"models/{P}/release"},
        reports={"record": f"k8s/{P}/promoted.yaml", "model_card": f"reports/{P}/model_card.md",
                 "model_card_html": f"reports/{P}/model_card.html"},
    ),
)

STAGES_BY_NAME: dict[str, StageInfo] = {stage.name: stage for stage in STAGES}

LOOP_PARAMS = ("seed", "classes", "active_learning", "data.embedding", "data.cleaning.static_frame_flow_px",
               "data.quality.min_size_px", "data.quality.max_image_pixels")
"""What every task's select stage reads: the loop's settings, and what pool images must pass as ingest does."""
LOOP_REPORTS = {"queue_png": f"reports/{P}/select/queue.png"}
LOOP_FILES = {"tasks": f"data/{P}/select/labelstudio_tasks.json", "scores": f"data/{P}/select/scores.csv",
              "auto_labels": f"data/{P}/select/auto_labels.json", "pool": f"data/{P}/select/pool.csv"}


def _loop_stages(task: str, module: str) -> tuple[StageInfo, ...]:
    """The data loop's stages for one task: the optional ensemble, then select. Select scores with the deployable
    model whatever the gate said (`dvc repro <project>-select` runs a round without the gate): a young project
    needs labels most when its model is still poor."""
    inputs = {"images": "ingest.images", "manifest": "ingest.manifest", "embeddings": "embed.embeddings",
              "duplicate_rule": "clean.rule",
              "deployable": "export.deployable", "serving_state": "dependability.serving_state",
              "model": "train.model"}
    if task == "detection":
        inputs["boxes"] = "ingest.boxes"
    train_stage = next(s for s in PIPELINES_WITHOUT_LOOP[task] if s.name == "train")
    return (
        StageInfo(
            name="ensemble",
            summary="Train the data loop's ensemble: members like the trained model (its searched settings included) "
                    "with seeds seed+1, seed+2, ...",
            params=tuple(dict.fromkeys((*train_stage.params, "active_learning.ensemble"))),
            inputs={"images": "ingest.images", "manifest": "ingest.manifest", "split": "prune.split",
                    "train_metrics": "train.metrics", **({"boxes": "ingest.boxes"} if task == "detection" else {})},
            outs={"members": f"models/{P}/ensemble"},
            metrics={"summary": f"reports/{P}/ensemble/summary.json"},
            module_name=f"{module}.ensemble",
            only_when="active_learning.ensemble",
        ),
        StageInfo(
            name="select",
            summary="Score the unlabelled pool with the deployable model and pick the round's label queue "
                    "(uncertainty and diversity): Label Studio tasks with pre-annotations, COCO/YOLO for CVAT, "
                    "auto-labels apart",
            params=(*LOOP_PARAMS, *(("detection",) if task == "detection" else ())),
            inputs=inputs,
            optional_inputs={"ensemble": ("ensemble.members", "active_learning.ensemble")},
            outs={"selection": f"data/{P}/select"},
            files=LOOP_FILES,
            reports=LOOP_REPORTS,
            metrics={"summary": f"reports/{P}/select/summary.json"},
            reads_paths_of=("active_learning.pool", "active_learning.zero_shot"),
            module_name=f"{module}.select",
            only_when="active_learning",
        ),
    )

_SHARED = {name: STAGES_BY_NAME[name] for name in ("embed", "clean", "split")}
"""Stages a detection project runs exactly as a classification project does: they see images, not labels
(the manifest's `label` of a detection image is its stratum, see stages.detection.ingest)."""

DETECTION_STAGES: tuple[StageInfo, ...] = (
    StageInfo(
        name="synthesize",
        summary="Build the embedded detection data set (digits pasted on real photos, exact boxes) as COCO",
        params=("seed", "classes", "data.synthesize"),
        outs={"dataset": f"data/{P}/synthesize"},
        module_name="stages.detection.synthesize",
        only_when="data.synthesize",
    ),
    StageInfo(
        name="ingest",
        summary="Collect images and boxes from the spec's coco, yolo and voc sources into one canonical image set, "
                "an image manifest and a box table (xyxy pixels); bad images and bad boxes quarantined",
        params=("classes", "data.sources", "data.quality.min_size_px", "data.quality.max_image_pixels",
                "data.boxes.clip_tolerance_px", "data.boxes.min_side_px", "data.boxes.duplicate_iou"),
        outs={"images": f"data/{P}/ingest"},
        files={"manifest": f"data/{P}/ingest/manifest.csv", "boxes": f"data/{P}/ingest/boxes.csv",
               "quarantine": f"data/{P}/ingest/quarantine.csv", "box_quarantine": f"data/{P}/ingest/box_quarantine.csv",
               "skipped": f"data/{P}/ingest/skipped.csv"},
        metrics={"summary": f"reports/{P}/ingest/summary.json"},
        reads_paths_of=("data.sources",),
        module_name="stages.detection.ingest",
    ),
    StageInfo(
        name="validate",
        summary="Data-quality gate for boxes: a great-expectations suite from data.quality and data.boxes, run as "
                "a checkpoint",
        params=("classes", "data.quality.min_images_per_class", "data.quality.max_corrupt_fraction",
                "data.boxes.min_instances_per_class", "data.boxes.max_instance_imbalance",
                "data.boxes.max_boxes_per_image", "data.boxes.area_fraction", "data.boxes.max_aspect_ratio",
                "data.boxes.max_quarantined_fraction"),
        inputs={"images": "ingest.images", "manifest": "ingest.manifest", "boxes": "ingest.boxes",
                "quarantine": "ingest.quarantine", "box_quarantine": "ingest.box_quarantine"},
        outs={"data_docs": f"reports/{P}/validate/data_docs"},
        files={"data_docs_index": f"reports/{P}/validate/data_docs/index.html"},
        reports={"result": f"reports/{P}/validate/result.json"},
        metrics={"summary": f"reports/{P}/validate/summary.json"},
        data_files=WEB_ASSETS,
        module_name="stages.detection.validate",
    ),
    _SHARED["embed"],
    _SHARED["clean"],
    _SHARED["split"],
    StageInfo(
        name="prune",
        summary="Keep the most useful data.pruning.budget share of the training split, and at least "
                "data.boxes.min_instances_per_class boxes of every class",
        params=("seed", "data.pruning", "data.boxes.min_instances_per_class"),
        inputs={"split": "split.split", "embeddings": "embed.embeddings", "boxes": "ingest.boxes"},
        outs={"pruned": f"data/{P}/prune"},
        files={"split": f"data/{P}/prune/split.csv"},
        reports={"projection_png": f"reports/{P}/prune/projection.png"},
        metrics={"summary": f"reports/{P}/prune/summary.json"},
        plots=(PlotInfo("projection", f"reports/{P}/prune/projection.csv", x="x", y=("y",), template="scatter",
                        title="Training embeddings (PCA): kept vs dropped"),),
        module_name="stages.detection.prune",
    ),
    StageInfo(
        name="train",
        summary="Train the single-stage detector (timm backbone, FPN, FCOS head) with Lightning on the pruned "
                "training split, keeping the epoch of best validation mAP (optuna search first when train.hpo is set)",
        params=("seed", "classes", "augment", "model.backbone", "model.pretrained", "train", "detection.input_size_px",
                "detection.strides",
                "detection.fpn_channels", "detection.head_convs", "detection.center_sampling_radius",
                "detection.score_threshold", "detection.nms_iou", "detection.max_detections",
                "detection.min_visibility"),
        inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "prune.split"},
        outs={"model": f"models/{P}/train"},
        reports={"augmentations": f"reports/{P}/train/augmentations.png"},
        metrics={"metrics": f"reports/{P}/train/metrics.json"},
        plots=(PlotInfo("map", f"reports/{P}/train/history.csv", x="epoch", y=("val_map", "val_map50"),
                        title="Validation mAP per epoch"),
               PlotInfo("loss", f"reports/{P}/train/history.csv", x="epoch", y=("train_loss", "val_loss"),
                        title="Training and validation loss per epoch")),
        optional=(SEARCH_OUTPUTS,),
        module_name="stages.detection.train",
    ),
    StageInfo(
        name="evaluate",
        summary="Measure the trained detector on the test split: COCO mAP (torchmetrics, faster_coco_eval), "
                "per-class AP, precision-recall curves, a confusion matrix with background, the worst images",
        params=("classes", "detection.confidence_threshold"),
        inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "split.split", "model": "train.model"},
        reports={"per_class": f"reports/{P}/evaluate/per_class.json",
                 "worst": f"reports/{P}/evaluate/worst.png"},
        metrics={"metrics": f"reports/{P}/evaluate/metrics.json"},
        plots=(PlotInfo("precision_recall", f"reports/{P}/evaluate/precision_recall.csv", x="recall",
                        y=("precision_{class}",), title="Precision-recall per class at IoU 0.5 (test split)"),
               PlotInfo("confusion", f"reports/{P}/evaluate/confusion.csv", x="actual", y=("predicted",),
                        template="confusion", title="Detections vs truth at IoU 0.5, with background (test split)")),
        module_name="stages.detection.evaluate",
    ),
    StageInfo(
        name="compress",
        summary="Prune the whole detector (torch-pruning over backbone, neck and head) toward compress.budget, with "
                "and without distillation from the trained detector; export every candidate to ONNX and check its "
                "decoded detections against torch",
        params=("seed", "classes", "augment", "train.optimizer", "train.scheduler", "train.batch_size",
                "train.epochs", "train.select_by", "compress.budget", "compress.methods", "compress.importance",
                "compress.prune_steps", "compress.max_prune_ratio", "compress.finetune_epochs",
                "compress.finetune_min_steps", "compress.distillation", "compress.allocation",
                "detection.min_visibility", "detection.confidence_threshold"),
        inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "prune.split", "model": "train.model"},
        outs={"candidates": f"models/{P}/compress"},
        files={"variants": f"models/{P}/compress/variants.json"},
        metrics={"summary": f"reports/{P}/compress/summary.json"},
        plots=(PlotInfo("rounds", f"reports/{P}/compress/rounds.csv", x="params", y=("val_map",),
                        template="scatter", title="Pruning rounds: parameters vs validation mAP50-95"),),
        module_name="stages.detection.compress",
    ),
    StageInfo(
        name="export",
        summary="Lower the detector candidates for target.hardware (int8 or fp16), measure mAP and batch-1 latency "
                "with decoding and NMS for every variant, and keep the fastest within compress.budget",
        params=("compress.budget", "compress.methods", "compress.calibration_images", "detection.confidence_threshold",
                "target"),
        inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "prune.split",
                "candidates": "compress.candidates", "variants": "compress.variants"},
        outs={"deployable": f"models/{P}/export"},
        reports={"choice": f"reports/{P}/export/choice.json"},
        metrics={"summary": f"reports/{P}/export/summary.json"},
        plots=(PlotInfo("variants", f"reports/{P}/export/variants.csv", x="latency_ms_1_thread",
                        y=("val_map",), template="scatter", title="Variants: latency vs validation mAP50-95"),),
        module_name="stages.detection.export",
    ),
    StageInfo(
        name="dependability",
        summary="Measure the deployable detector where the test split does not look: mAP under corruptions (boxes "
                "kept), image-level OOD from pooled features, D-ECE with a fitted temperature, EigenCAM",
        params=("seed", "augment", "data.synthesize", "dependability.ood.detector", "dependability.ood.ood_sources",
                "dependability.robustness.corruptions", "dependability.robustness.severities", "dependability.explain"),
        inputs={"images": "ingest.images", "boxes": "ingest.boxes", "split": "prune.split",
                "deployable": "export.deployable", "candidates": "compress.candidates"},
        outs={"serving_state": f"models/{P}/dependability"},
        reports={"ood": f"reports/{P}/dependability/ood.json",
                 "robustness_png": f"reports/{P}/dependability/robustness.png",
                 "reliability_png": f"reports/{P}/dependability/reliability.png",
                 "ood_scores_png": f"reports/{P}/dependability/ood_scores.png",
                 "gradcam_png": f"reports/{P}/dependability/gradcam.png"},
        metrics={"metrics": f"reports/{P}/dependability/metrics.json"},
        plots=(PlotInfo("robustness", f"reports/{P}/dependability/robustness.csv", x="map",
                        y=("condition",), template="bar_horizontal",
                        title="Test mAP50-95 per corruption and severity"),
               PlotInfo("reliability", f"reports/{P}/dependability/reliability.csv", x="confidence",
                        y=("precision",), title="Box confidence reliability after temperature scaling (test split)")),
        reads_paths_of=("dependability.ood.ood_sources",),
        module_name="stages.detection.dependability",
    ),
    StageInfo(
        name="gate",
        summary="Judge the detector's figures against the spec's thresholds (mAP50-95, mAP50, OOD, corruption "
                "drops, D-ECE, budget), write the verdict and the report, and fail on any unmet threshold",
        params=("dependability.min_map", "dependability.min_map50", "dependability.ood.min_auroc",
                "dependability.ood.max_accepted_fraction", "dependability.robustness.max_accuracy_drop",
                "dependability.calibration", "compress.budget"),
        inputs={"figures": "dependability.metrics", "export_summary": "export.summary", "ood": "dependability.ood",
                "robustness_png": "dependability.robustness_png", "reliability_png": "dependability.reliability_png",
                "ood_scores_png": "dependability.ood_scores_png", "gradcam_png": "dependability.gradcam_png",
                "deployable": "export.deployable", "serving_state": "dependability.serving_state"},
        reports={"report_html": f"reports/{P}/dependability.html", "summary_md": f"reports/{P}/gate/summary.md"},
        metrics={"verdict": f"reports/{P}/gate/verdict.json"},
        data_files=("vision/dependability/templates/dependability_detection.html.j2",),
        module_name="stages.detection.gate",
    ),
    STAGES_BY_NAME["promote"],
)

PIPELINES_WITHOUT_LOOP: dict[str, tuple[StageInfo, ...]] = {"classification": STAGES, "detection": DETECTION_STAGES}



def _with_loop(stages: tuple[StageInfo, ...], task: str, module: str) -> tuple[StageInfo, ...]:
    """The task's stages with the loop's: the ensemble right after train (dependability may score with it),
    select last."""
    ensemble, select = _loop_stages(task, module)
    after_train = [s.name for s in stages].index("train") + 1
    return (*stages[:after_train], ensemble, *stages[after_train:], select)


PIPELINES: dict[str, tuple[StageInfo, ...]] = {
    "classification": _with_loop(STAGES, "classification", "stages.loop"),
    "detection": _with_loop(DETECTION_STAGES, "detection", "stages.detection.loop"),
}
"""Each task's stages in pipeline order (the spec's `task` chooses; stages with `only_when` only where it is
set)."""


def stage_named(name: str, task: str = "classification") -> StageInfo:
    return next(stage for stage in PIPELINES[task] if stage.name == name)


def resolve(reference: str, task: str = "classification") -> tuple[StageInfo, str]:
    """`<stage>.<output name>` -> (the producing stage, the output's path template) in `task`'s pipeline."""
    stage_name, _, output = reference.partition(".")
    stage = next((s for s in PIPELINES[task] if s.name == stage_name), None)
    if stage is None or output not in stage.outputs():
        raise ContractError(f"'{reference}' names no output of a stage")
    return stage, stage.outputs()[output]


def dvc_dependency(reference: str, task: str = "classification") -> str:
    """The path template DVC tracks for an input: the output itself, or the output folder holding the file."""
    stage, path = resolve(reference, task)
    if path in stage.dvc_outputs():
        return path
    return next(out for out in sorted(stage.dvc_outputs()) if path.startswith(out.rstrip("/") + "/"))


def code_dependencies(info: StageInfo) -> tuple[str, ...]:
    """Every project file the stage's module runs (its static import closure) and the data files its code
    reads: an edit to any of them re-runs the stage."""
    return (*_closure(info.module), *info.data_files)


@cache
def _closure(module: str) -> tuple[str, ...]:
    return import_closure(module, CODE_ROOT, CODE_PACKAGES)
