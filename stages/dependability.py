"""dependability: how the deployable model behaves where the test split does not look.

Everything is measured on the file that will serve (`models/<p>/export/model.onnx`
through ONNX Runtime): test accuracy; out-of-distribution detection with every
post-hoc detector on far (real photos, noise, the spec's `ood_sources`) and near
(shuffled patches, heavy occlusion) sets; accuracy per corruption and severity;
calibration before and after temperature scaling. Grad-CAM needs gradients, so
its maps come from the torch form of the same candidate, and their faithfulness
(ROAD) is scored on the ONNX file. The temperature and the chosen detector's
threshold are saved for serving; the gate stage judges the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from core.fsutil import atomic_directory, read_json, write_csv, write_json
from core.progress import Progress
from runtime.bundle import (
    MODEL_FILE,
    PREPROCESS_FILE,
    Preprocessing,
)
from runtime.ood import ood_score
from stages.runtime import StageContext, StageFailure, run_stage
from vision.compression.candidates import load_candidate
from vision.compression.onnx import OUTPUT, logits_of, predict_outputs, session
from vision.data.dataset import Splits, load_splits, to_tensor
from vision.data.streams import Images
from vision.dependability.calibration import expected_calibration_error, fit_temperature, reliability_rows
from vision.dependability.explain import Explanations, explain
from vision.dependability.figures import gradcam_gallery, ood_histogram, reliability_diagram, robustness_heatmap
from vision.dependability.ood import (
    DETECTORS,
    LOGIT_DETECTORS,
    FeatureDetector,
    OodMetrics,
    logit_scores,
    ood_metrics,
    threshold_at_tpr,
)
from vision.dependability.ood_choice import DetectorChoice, choose_detector
from vision.dependability.ood_sets import folder_images, ood_sets, selection_sets
from vision.dependability.robustness import CorruptionResult, family_figures, robustness, summary
from vision.dependability.serving_state import write_serving_state
from vision.training.augment import enabled

TPR = 0.95
"""In-distribution images the serving threshold accepts."""


@dataclass(frozen=True)
class Outputs:
    logits: np.ndarray
    features: np.ndarray
    members: np.ndarray | None = None
    """The data loop's ensemble members' logits (M x N x C) when the project has an ensemble."""


@dataclass
class Assessment:
    accuracy: float
    detector: str
    """The detector serving uses: the spec's, or the one `auto` chose."""
    choice: DetectorChoice | None
    threshold: float
    """Score above which serving abstains: accepts TPR of validation images."""
    ood: dict[str, dict[str, OodMetrics]]
    """Detector -> set -> metrics."""
    set_kinds: dict[str, str]
    scores: dict[str, np.ndarray]
    """The chosen detector's scores on the test split ('test') and each set."""
    temperature: float
    ece_before: float
    ece_after: float
    reliability_before: list[dict[str, float]]
    reliability_after: list[dict[str, float]]
    clean_accuracy: float
    corruptions: list[CorruptionResult]
    explanations: Explanations
    explained: list[int]
    """Test-split indices of the explained images."""
    predicted: np.ndarray
    recall: list[float]
    """Test recall of each class, by class index: the share of its images the model gets right."""
    ood_state: dict[str, np.ndarray]
    """The chosen detector's fitted arrays, saved for the model server."""


def _scores(name: str, detector: FeatureDetector | None, out: Outputs) -> np.ndarray:
    if name == "ensemble":  # the server's own formula (runtime.ood): what it will compute per request
        return ood_score("ensemble", out.logits, out.features, {}, out.members)
    return logit_scores(name, out.logits) if detector is None else detector.score(out.features)


@dataclass(frozen=True)
class OodResult:
    detector: str
    table: dict[str, dict[str, OodMetrics]]
    """Detector -> gated and reported set -> metrics, each detector at its own serving threshold."""
    threshold: float
    scores: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    """The chosen detector's fitted arrays: what the model server scores with."""
    choice: DetectorChoice | None
    """How `auto` chose (None when the spec names the detector)."""


@dataclass(frozen=True)
class _Scored:
    threshold: float
    scores: dict[str, np.ndarray]
    state: dict[str, np.ndarray]


# Ten parameters: the model's outputs on each split and set, the classifier, the spec's choice, the selection
# sets for `auto`, a progress hook and the ensemble; a bundle of them would exist for this one call.
def assess_ood(train: Outputs, train_labels: np.ndarray, val: Outputs, test: Outputs, sets: dict[str, Outputs],
               classifier: tuple[np.ndarray, np.ndarray], chosen: str,
               selection: dict[str, Outputs] | None = None, kinds: dict[str, str] | None = None,
               on_detector: Callable[[str], None] | None = None,
               member_state: dict[str, np.ndarray] | None = None) -> OodResult:
    """Every detector on every set at the threshold serving would use (95% of validation images accepted); with
    `chosen == "auto"`, the detector is picked on `selection` (and `kinds`, which also names its sets' kinds).
    With `member_state` (the ensemble's ONNX files as bytes, what serving loads) and the members' logits in every
    Outputs, the ensemble's disagreement is measured beside the others."""
    if chosen == "auto" and (not selection or kinds is None):
        raise ValueError("detector 'auto' needs selection sets and their kinds")
    table: dict[str, dict[str, OodMetrics]] = {}
    picked: dict[str, dict[str, OodMetrics]] = {}
    scored: dict[str, _Scored] = {}
    for name in (*DETECTORS, *(("ensemble",) if member_state else ())):
        detector = None
        if name not in LOGIT_DETECTORS and name != "ensemble":
            weight, bias = classifier
            detector = FeatureDetector(name, weight=weight, bias=bias).fit(train.features, train_labels)
        val_scores, test_scores = _scores(name, detector, val), _scores(name, detector, test)
        threshold = round(threshold_at_tpr(val_scores, TPR), 6)
        per_set = {set_name: _scores(name, detector, out) for set_name, out in sets.items()}
        table[name] = {set_name: ood_metrics(test_scores, scores, TPR, threshold)
                       for set_name, scores in per_set.items()}
        if chosen == "auto":
            picked[name] = {set_name: ood_metrics(val_scores, _scores(name, detector, out), TPR, threshold)
                            for set_name, out in (selection or {}).items()}
        state = member_state if name == "ensemble" else detector.state() if detector is not None else {}
        scored[name] = _Scored(threshold, {"test": test_scores, **per_set}, state or {})
        if on_detector:
            on_detector(name)
    choice = choose_detector(picked, kinds or {}) if chosen == "auto" else None
    name = choice.detector if choice else chosen
    return OodResult(name, table, scored[name].threshold, scored[name].scores, scored[name].state, choice)


def explained_indices(actual: np.ndarray, predicted: np.ndarray, count: int, seed: int) -> list[int]:
    """Up to half misclassified, the rest correct, drawn with the seed; sorted, mistakes first."""
    rng = np.random.default_rng(seed)
    wrong, right = np.flatnonzero(actual != predicted), np.flatnonzero(actual == predicted)
    take_wrong = min(len(wrong), count // 2)
    take_right = min(len(right), count - take_wrong)
    return ([int(i) for i in sorted(rng.choice(wrong, take_wrong, replace=False))]
            + [int(i) for i in sorted(rng.choice(right, take_right, replace=False))])


def onnx_forward(sess: ort.InferenceSession):
    """The deployed model's session as a tensor -> logits callable (what ROAD perturbs and re-scores)."""
    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(logits_of(sess, inputs.numpy()))

    return forward


@dataclass(frozen=True)
class Plan:
    """What to measure: the spec keys this stage declares (thresholds are the gate's, so editing one does not
    re-run these measurements)."""

    detector: str
    """A detector name, or 'auto'."""
    corruptions: list[str]
    severities: list[int]
    gradcam_samples: int
    trained_on: set[str]

    @classmethod
    def from_spec(cls, ctx: StageContext) -> Plan:
        return cls(ctx.spec("dependability.ood.detector"), list(ctx.spec("dependability.robustness.corruptions")),
                   list(ctx.spec("dependability.robustness.severities")),
                   ctx.spec("dependability.explain").gradcam_samples, set(enabled(ctx.spec("augment"))))


def assess(deployable: Path, candidate: torch.nn.Module, splits: Splits, plan: Plan, seed: int,
           extra_ood: dict[str, Images], members: list[Path] | None = None) -> Assessment:
    """Every figure the gate judges, measured on the deployable ONNX file, with progress lines as it goes;
    `members`: the data loop's ensemble as ONNX files, whose disagreement is one more OOD detector."""
    train, val, test = splits.train, splits.val, splits.test
    sess = session(deployable)
    member_sessions = [session(path) for path in members or []]
    member_state = {f"member_{i}": np.frombuffer(path.read_bytes(), np.uint8)
                    for i, path in enumerate(members or [])}
    size_px = int(test.images.shape[1])
    steps = 1 + len(DETECTORS) + bool(members) + len(plan.corruptions) * len(plan.severities) + 1
    with Progress("dependability", steps, unit="step") as shown:

        def run(images: Images) -> Outputs:
            logits, features = predict_outputs(sess, images)
            stacked = np.stack([predict_outputs(m, images, (OUTPUT,))[0] for m in member_sessions]) \
                if member_sessions else None
            return Outputs(logits, features, stacked)

        train_out, val_out, test_out = run(train.images), run(val.images), run(test.images)
        predicted = test_out.logits.argmax(1)
        sets = ood_sets(test.images, size_px, seed, extra_ood)
        picking = selection_sets(val.images, size_px, seed) if plan.detector == "auto" else []
        set_outputs = {s.name: run(s.images) for s in sets}
        picking_outputs = {s.name: run(s.images) for s in picking}
        shown.update(1, "model run on the splits and the OOD sets")
        classifier = candidate.get_classifier()
        ood = assess_ood(
            train_out, train.labels, val_out, test_out, set_outputs,
            (classifier.weight.detach().numpy(), classifier.bias.detach().numpy()), plan.detector,
            picking_outputs, {s.name: s.kind for s in picking},
            on_detector=lambda name: shown.update(1, f"OOD detector {name} measured"), member_state=member_state)
        temperature = fit_temperature(val_out.logits, val.labels)
        clean, corruptions = robustness(
            lambda images: run(images).logits.argmax(1), test.images, test.labels, plan.corruptions, plan.severities,
            plan.trained_on, seed,
            on_result=lambda r: shown.update(1, f"{r.corruption} severity {r.severity}: accuracy {r.accuracy:.3f}"))
        chosen = explained_indices(test.labels, predicted, plan.gradcam_samples, seed)
        explanations = explain(candidate, onnx_forward(sess), to_tensor(test.images[chosen]), predicted[chosen],
                               seed)
        shown.update(1, f"Grad-CAM on {len(chosen)} images")
    return Assessment(
        accuracy=round(float((predicted == test.labels).mean()), 6), detector=ood.detector, choice=ood.choice,
        threshold=ood.threshold, ood=ood.table, set_kinds={s.name: s.kind for s in sets}, scores=ood.scores,
        ood_state=ood.state,
        temperature=temperature, ece_before=expected_calibration_error(test_out.logits, test.labels),
        ece_after=expected_calibration_error(test_out.logits, test.labels, temperature),
        reliability_before=reliability_rows(test_out.logits, test.labels),
        reliability_after=reliability_rows(test_out.logits, test.labels, temperature),
        clean_accuracy=clean, corruptions=corruptions, explanations=explanations, explained=chosen,
        predicted=predicted, recall=class_recall(test.labels, predicted))


def class_recall(labels: np.ndarray, predicted: np.ndarray) -> list[float]:
    """Recall per class index present in `labels` or `predicted` (a class with no test image gets 0)."""
    count = int(max(labels.max(initial=-1), predicted.max(initial=-1))) + 1
    return [round(float(np.mean(predicted[labels == c] == c)), 6) if np.any(labels == c) else 0.0
            for c in range(count)]


def _name(classes: list[str], index: int) -> str:
    return classes[index] if index < len(classes) else str(index)


def family_drops(clean: float, results: list[CorruptionResult],
                 classes: list[str] | None = None) -> dict[str, dict[str, object]]:
    """Per corruption: mean accuracy over the severities, its drop from clean, whether training saw it, and the
    severities where the model collapsed to one class."""
    return {name: {**family, "collapsed": [{"severity": r.severity, "class": _name(classes or [], r.top_class),
                                            "share": r.top_share}
                                           for r in results if r.corruption == name and r.collapsed]}
            for name, family in family_figures(clean, results).items()}


def metrics(result: Assessment, variant: str, classes: list[str] | None = None) -> dict[str, object]:
    """The figures the gate reads, in one JSON that `dvc metrics diff` can compare between commits."""
    chosen = result.ood[result.detector]
    far = [m for name, m in chosen.items() if result.set_kinds[name] == "far"]
    near = [m for name, m in chosen.items() if result.set_kinds[name] == "near"]
    robust = summary(result.clean_accuracy, result.corruptions)
    e = result.explanations
    return {
        "variant": variant, "accuracy": result.accuracy,
        "recall_by_class": {_name(classes or [], c): r for c, r in enumerate(result.recall)},
        "ood": {"detector": result.detector, "chosen_by": "auto" if result.choice else "spec",
                "threshold": result.threshold, "tpr": TPR,
                "far_auroc": min(m.auroc for m in far), "far_fpr_at_95_tpr": max(m.fpr_at_95_tpr for m in far),
                "far_accepted_fraction": max(m.accepted_fraction for m in far),
                "near_auroc": min(m.auroc for m in near) if near else None,
                "inverted_sets": sorted(name for name, m in chosen.items() if m.inverted),
                "sets": {name: asdict(m) for name, m in chosen.items()}},
        "robustness": {**{k: robust[k] for k in ("clean_accuracy", "mean_ratio", "held_out_mean_ratio",
                                                 "seen_mean_ratio", "held_out", "worst")},
                       "families": family_drops(result.clean_accuracy, result.corruptions, classes)},
        "calibration": {"temperature": result.temperature, "ece_before": result.ece_before,
                        "ece_after": result.ece_after},
        "explain": {"samples": len(result.explained), "road_gradcam": e.road_gradcam, "road_random": e.road_random,
                    "gradcam_beats_random": e.beats_random,
                    "randomised_rank_correlation": e.randomised_rank_correlation},
    }


def extra_ood_sets(root: Path, folders: list[str], size_px: int) -> tuple[dict[str, Images], list[str]]:
    images: dict[str, Images] = {}
    unreadable: list[str] = []
    for folder in folders:
        path = root / folder
        if not path.is_dir():
            raise StageFailure(f"dependability.ood.ood_sources: folder '{folder}' does not exist")
        found, bad = folder_images(path, size_px)
        if not len(found):
            raise StageFailure(f"dependability.ood.ood_sources: folder '{folder}' holds no readable image")
        images[f"source:{folder}"] = found
        unreadable.extend(bad)
    return images, unreadable


# Over 40 lines: the stage reads its inputs, writes each named output and prints its summary in order; each
# step is a call into the library, and splitting them would only pass the same dozen values around.
def main(ctx: StageContext) -> None:
    seed: int = ctx.spec("seed")
    plan = Plan.from_spec(ctx)
    ingest_dir, split_csv, export_dir = ctx.input("images"), ctx.input("split"), ctx.input("deployable")
    preprocess = Preprocessing.from_dict(read_json(export_dir / PREPROCESS_FILE))
    classes, size_px = preprocess.classes, preprocess.input_size_px
    splits = load_splits(ingest_dir, split_csv, classes, size_px)
    candidate, _ = load_candidate(ctx.input("candidates"), preprocess.variant.rsplit("-", 1)[0])
    extra, unreadable = extra_ood_sets(ctx.root, list(ctx.spec("dependability.ood.ood_sources")), size_px)
    members = sorted(ctx.input("ensemble").glob("member-*/model.onnx")) \
        if ctx.spec("active_learning.ensemble") is not None else []
    result = assess(export_dir / MODEL_FILE, candidate, splits, plan, seed, extra, members)
    figures = metrics(result, preprocess.variant, classes)
    with atomic_directory(ctx.output("serving_state")) as out:
        write_serving_state(out, result.temperature, result.detector, result.threshold, TPR, result.ood_state)
    ood_json, heatmap_png, reliability_png, scores_png, gradcam_png = (
        ctx.output(name) for name in ("ood", "robustness_png", "reliability_png", "ood_scores_png", "gradcam_png"))
    write_json(ood_json, {"detector": result.detector, "tpr": TPR, "set_kinds": result.set_kinds,
                          "choice": result.choice.as_dict() if result.choice else None,
                          "unreadable_ood_files": unreadable,
                          "detectors": {d: {s: asdict(m) for s, m in sets.items()} for d, sets in result.ood.items()}})
    robustness_heatmap(result.clean_accuracy, result.corruptions, heatmap_png, f"{ctx.project}: accuracy under "
                       "corruptions (deployable model)", classes)
    reliability_diagram(result.reliability_before, result.reliability_after, result.temperature, result.ece_before,
                        result.ece_after, reliability_png, f"{ctx.project}: reliability (test split)")
    ood_histogram(result.scores, result.set_kinds, result.threshold, result.detector, scores_png,
                  f"{ctx.project}: {result.detector} scores")
    gradcam_gallery(splits.test, result.predicted, result.explained, result.explanations.maps, classes, gradcam_png,
                    f"{ctx.project}: Grad-CAM on the deployable candidate")
    write_json(ctx.output("metrics"), figures)
    write_csv(ctx.output("robustness"), [{"condition": f"{r.corruption} s{r.severity}", "accuracy": r.accuracy,
                             "seen_in_training": r.seen_in_training} for r in result.corruptions]
              + [{"condition": "clean", "accuracy": result.clean_accuracy, "seen_in_training": True}])
    write_csv(ctx.output("reliability"), [{"confidence": row["confidence"], "accuracy": row["accuracy"],
                                           "count": row["count"]}
                            for row in result.reliability_after])
    ood, robust, cal = figures["ood"], figures["robustness"], figures["calibration"]
    if result.choice:
        print(f"dependability: detector auto -> {result.choice.reason}")
    for name in ood["inverted_sets"]:
        print(f"dependability: WARNING {result.detector} is inverted on {name} (AUROC "
              f"{ood['sets'][name]['auroc']:.4f} < 0.5): it finds these images more familiar than the test split")
    print(f"dependability: {preprocess.variant} test accuracy {result.accuracy:.4f}; {result.detector} far-OOD "
          f"AUROC {ood['far_auroc']:.4f} (FPR95 {ood['far_fpr_at_95_tpr']:.3f}, accepted at the serving threshold "
          f"{ood['far_accepted_fraction']:.3f}), near {ood['near_auroc']:.4f}; "
          f"corrupted/clean {robust['mean_ratio']} (held-out {robust['held_out_mean_ratio']}); ECE "
          f"{cal['ece_before']:.4f} -> {cal['ece_after']:.4f} at T={cal['temperature']:.3f}; ROAD Grad-CAM "
          f"{result.explanations.road_gradcam} vs random {result.explanations.road_random}")



if __name__ == "__main__":
    from core.contracts.classification.dependability import CONTRACT

    run_stage(CONTRACT, main)
