"""The explicit list of stages and the contract each one keeps with the pipeline.

This is the single place that says which params a stage reads, which files it
needs and which it writes. The compiler turns it into `dvc.yaml`; each stage's
CLI receives exactly the params declared here and nothing else, so a declared
key list can never silently fall behind the code that reads it.
Paths are templates: `{project}` is replaced by the spec's name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlotInfo:
    """One `dvc plots` view of a CSV the stage writes; a file may back several views."""

    name: str
    """Short view name; the plot id in `dvc.yaml` is `<stage id>-<name>`."""
    path: str
    x: str
    y: tuple[str, ...]
    template: str = "linear"
    title: str = ""


@dataclass(frozen=True)
class WhenSet:
    """Outputs a stage writes only when a spec key is set (not null), such as a search study."""

    key: str
    """Spec key relative to the project (`train.hpo`)."""
    persist: tuple[str, ...] = ()
    """DVC outputs kept in place between runs (`persist: true`): state a rerun resumes from."""
    reports: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageInfo:
    name: str
    summary: str
    params: tuple[str, ...]
    """Spec keys the stage reads, relative to the project (`train.optimizer.lr`, or a whole `train`)."""
    code: tuple[str, ...]
    """Source files whose change must re-run the stage."""
    deps: tuple[str, ...] = ()
    """Files the stage reads: outputs of earlier stages."""
    outs: tuple[str, ...] = ()
    """Outputs kept in the DVC cache."""
    reports: tuple[str, ...] = ()
    """Small outputs kept in git instead of the DVC cache, so pull requests show their diffs."""
    metrics: tuple[str, ...] = ()
    plots: tuple[PlotInfo, ...] = ()
    optional: tuple[WhenSet, ...] = ()
    reads_paths_of: tuple[str, ...] = ()
    """Spec keys whose repository paths the stage also reads (`data.sources`, `dependability.ood.ood_sources`);
    they become dependencies, so changing the files re-runs the stage."""

    @property
    def module(self) -> str:
        return f"stages.{self.name}"


STAGES: tuple[StageInfo, ...] = (
    StageInfo(
        name="ingest",
        summary="Collect images from the spec's sources into one canonical image set and manifest",
        params=("classes", "data.sources", "data.quality.min_size_px", "data.quality.max_image_pixels",
                "data.cleaning.static_frame_flow_px"),
        code=("stages/ingest.py", "stages/_sources.py", "stages/_video.py", "stages/_imageio.py",
              "vision/data/decode.py"),
        outs=("data/{project}/ingest",),
        metrics=("reports/{project}/ingest/summary.json",),
        reads_paths_of=("data.sources",),
    ),
    StageInfo(
        name="validate",
        summary="Data-quality gate: a great-expectations suite from data.quality, run as a checkpoint",
        params=("classes", "data.quality"),
        code=("stages/validate.py", "stages/_gx.py"),
        deps=("data/{project}/ingest",),
        outs=("reports/{project}/validate/data_docs",),
        reports=("reports/{project}/validate/result.json",),
        metrics=("reports/{project}/validate/summary.json",),
    ),
    StageInfo(
        name="embed",
        summary="Embed every ingested image with an offline pretrained backbone (cached for clean and prune)",
        params=("data.embedding",),
        code=("stages/embed.py", "stages/_pretrained.py", "stages/_imageio.py", "stages/_dataset.py",
              "vision/data/decode.py"),
        deps=("data/{project}/ingest", "reports/{project}/validate/summary.json"),
        outs=("data/{project}/embed",),
    ),
    StageInfo(
        name="clean",
        summary="Remove near-duplicates (faiss over embeddings) and flag dark, blurry or empty images",
        params=("data.cleaning.near_duplicate_cosine", "data.cleaning.remove_flagged"),
        code=("stages/clean.py", "stages/_neighbours.py"),
        deps=("data/{project}/ingest", "data/{project}/embed"),
        outs=("data/{project}/clean",),
        reports=("reports/{project}/clean/report.json",),
        metrics=("reports/{project}/clean/summary.json",),
    ),
    StageInfo(
        name="split",
        summary="Split into train, validation and test: stratified, group-aware, seeded, checked for leakage",
        params=("seed", "data.split", "data.cleaning.near_duplicate_cosine"),
        code=("stages/split.py", "stages/_neighbours.py"),
        deps=("data/{project}/clean", "data/{project}/embed"),
        outs=("data/{project}/split",),
        metrics=("reports/{project}/split/summary.json",),
    ),
    StageInfo(
        name="prune",
        summary="Keep the most useful data.pruning.budget share of each class of the training split",
        params=("seed", "data.pruning"),
        code=("stages/prune.py", "stages/_pruning.py", "stages/_plots.py"),
        deps=("data/{project}/split", "data/{project}/embed"),
        outs=("data/{project}/prune",),
        reports=("reports/{project}/prune/projection.png",),
        metrics=("reports/{project}/prune/summary.json",),
        plots=(PlotInfo("projection", "reports/{project}/prune/projection.csv", x="x", y=("y",), template="scatter",
                        title="Training embeddings (PCA): kept vs dropped"),),
    ),
    StageInfo(
        name="train",
        summary="Train the spec's timm backbone with Lightning on the pruned training split (optuna search first "
                "when train.hpo is set)",
        params=("seed", "classes", "augment", "model", "train"),
        code=("stages/train.py", "stages/_fit.py", "stages/_model.py", "stages/_dataset.py", "stages/_pretrained.py",
              "stages/_augment.py", "stages/_hpo.py", "stages/_train_reports.py", "stages/_plots.py"),
        deps=("data/{project}/ingest", "data/{project}/prune"),
        outs=("models/{project}/train",),
        reports=("reports/{project}/train/augmentations.png",),
        metrics=("reports/{project}/train/metrics.json",),
        plots=(PlotInfo("accuracy", "reports/{project}/train/history.csv", x="epoch", y=("val_accuracy",),
                        title="Validation accuracy per epoch"),
               PlotInfo("loss", "reports/{project}/train/history.csv", x="epoch", y=("train_loss", "val_loss"),
                        title="Training and validation loss per epoch")),
        optional=(WhenSet("train.hpo", persist=("models/{project}/hpo",),
                          reports=("reports/{project}/train/hpo/trials.csv",
                                   "reports/{project}/train/hpo/optimization_history.png",
                                   "reports/{project}/train/hpo/param_importances.png")),),
    ),
    StageInfo(
        name="evaluate",
        summary="Measure the trained model on the test split: accuracy, macro-F1, per-class figures, confusions "
                "and a gallery of mistakes",
        params=(),
        code=("stages/evaluate.py", "stages/_model.py", "stages/_dataset.py", "stages/_pretrained.py",
              "stages/_metrics.py", "stages/_plots.py"),
        deps=("data/{project}/ingest", "data/{project}/split", "models/{project}/train"),
        reports=("reports/{project}/evaluate/per_class.json", "reports/{project}/evaluate/top_confusions.json",
                 "reports/{project}/evaluate/misclassified.png"),
        metrics=("reports/{project}/evaluate/metrics.json",),
        plots=(PlotInfo("confusion", "reports/{project}/evaluate/confusion.csv", x="actual", y=("predicted",),
                        template="confusion", title="Confusion matrix (test split)"),),
    ),
    StageInfo(
        name="compress",
        summary="Prune (torch-pruning) and distill the trained model toward compress.budget; export every "
                "candidate to ONNX and check it against torch",
        params=("seed", "augment", "train.optimizer", "train.scheduler", "train.batch_size", "train.epochs",
                "train.label_smoothing", "compress.budget", "compress.methods", "compress.importance",
                "compress.prune_steps", "compress.max_prune_ratio", "compress.finetune_epochs",
                "compress.distillation", "compress.student"),
        code=("stages/compress.py", "stages/_compress.py", "stages/_candidates.py", "stages/_fit.py", "stages/_onnx.py",
              "stages/_model.py",
              "stages/_dataset.py", "stages/_augment.py", "stages/_pretrained.py"),
        deps=("data/{project}/ingest", "data/{project}/prune", "models/{project}/train"),
        outs=("models/{project}/compress",),
        metrics=("reports/{project}/compress/summary.json",),
        plots=(PlotInfo("rounds", "reports/{project}/compress/rounds.csv", x="params", y=("val_accuracy",),
                        template="scatter", title="Pruning rounds: parameters vs validation accuracy"),),
    ),
    StageInfo(
        name="export",
        summary="Quantize the candidates for target.hardware, measure every variant with ONNX Runtime and keep "
                "the fastest within compress.budget as the deployable model",
        params=("compress.budget", "compress.methods", "compress.calibration_images", "target"),
        code=("stages/export.py", "stages/_onnx.py", "stages/_dataset.py", "stages/_plots.py", "stages/_model.py",
              "stages/_pretrained.py", "compiler/profiles.py"),
        deps=("data/{project}/ingest", "data/{project}/prune", "models/{project}/compress", "models/{project}/train"),
        outs=("models/{project}/export",),
        reports=("reports/{project}/export/choice.json", "reports/{project}/export/pareto.png"),
        metrics=("reports/{project}/export/summary.json",),
        plots=(PlotInfo("variants", "reports/{project}/export/variants.csv", x="latency_ms_1_thread",
                        y=("val_accuracy",), template="scatter", title="Variants: latency vs validation accuracy"),),
    ),
    StageInfo(
        name="dependability",
        summary="Measure the deployable ONNX model where the test split does not look: out-of-distribution "
                "detection, corruptions, calibration, and Grad-CAM checked with ROAD",
        params=("seed", "augment", "dependability.ood.detector", "dependability.ood.ood_sources",
                "dependability.robustness.corruptions", "dependability.robustness.severities", "dependability.explain"),
        code=("stages/dependability.py", "stages/_dependability_figures.py", "stages/_ood.py", "stages/_ood_sets.py",
              "stages/_robustness.py", "stages/_calibration.py", "stages/_explain.py", "stages/_candidates.py",
              "stages/_compress.py", "stages/_onnx.py", "stages/_augment.py", "stages/_dataset.py",
              "stages/_model.py", "stages/_plots.py", "stages/_imageio.py", "stages/_sources.py",
              "vision/data/decode.py"),
        deps=("data/{project}/ingest", "data/{project}/prune", "models/{project}/export", "models/{project}/compress"),
        outs=("models/{project}/dependability",),
        reports=("reports/{project}/dependability/ood.json", "reports/{project}/dependability/robustness.png",
                 "reports/{project}/dependability/reliability.png", "reports/{project}/dependability/ood_scores.png",
                 "reports/{project}/dependability/gradcam.png"),
        metrics=("reports/{project}/dependability/metrics.json",),
        plots=(PlotInfo("robustness", "reports/{project}/dependability/robustness.csv", x="accuracy",
                        y=("condition",), template="bar_horizontal", title="Test accuracy per corruption and severity"),
               PlotInfo("reliability", "reports/{project}/dependability/reliability.csv", x="confidence",
                        y=("accuracy",), title="Reliability after temperature scaling (test split)")),
        reads_paths_of=("dependability.ood.ood_sources",),
    ),
    StageInfo(
        name="gate",
        summary="Judge every measured figure against the spec's thresholds, write the verdict and the "
                "dependability report, and fail on any unmet threshold",
        params=("dependability.min_accuracy", "dependability.ood.min_auroc",
                "dependability.robustness.max_accuracy_drop", "dependability.calibration", "compress.budget"),
        code=("stages/gate.py", "stages/_verdict.py", "stages/_report.py", "stages/templates/dependability.html.j2",
              "serving/bundle.py", "compiler/content.py"),
        deps=("reports/{project}/dependability/metrics.json", "reports/{project}/export/summary.json",
              "reports/{project}/dependability/ood.json", "reports/{project}/dependability/robustness.png",
              "reports/{project}/dependability/reliability.png", "reports/{project}/dependability/ood_scores.png",
              "reports/{project}/dependability/gradcam.png", "models/{project}/export",
              "models/{project}/dependability"),
        reports=("reports/{project}/dependability.html", "reports/{project}/gate/summary.md"),
        metrics=("reports/{project}/gate/verdict.json",),
    ),
    StageInfo(
        name="promote",
        summary="On a passing gate only: bundle the deployable model, record its content address in "
                "k8s/<project>/promoted.yaml, render the serving manifests for it and write the model card",
        params=("serving.storage_uri",),
        code=("stages/promote.py", "compiler/content.py", "compiler/emitters/k8s.py", "compiler/compile.py",
              "serving/bundle.py"),
        deps=("reports/{project}/gate/verdict.json", "models/{project}/export", "models/{project}/dependability",
              "reports/{project}/evaluate/metrics.json", "reports/{project}/export/summary.json",
              "reports/{project}/dependability/metrics.json"),
        outs=("models/{project}/release",),
        reports=("k8s/{project}/promoted.yaml", "reports/{project}/model_card.md"),
    ),
)

STAGES_BY_NAME: dict[str, StageInfo] = {stage.name: stage for stage in STAGES}
