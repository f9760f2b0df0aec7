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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from core.fsutil import read_json
from core.progress import Progress
from runtime.bundle import MODEL_FILE, PREPROCESS_FILE, Preprocessing
from stages import assessing
from stages.assessing import Plan
from stages.runtime import StageContext, run_stage
from vision.compression.candidates import load_candidate
from vision.compression.onnx import OUTPUT, logits_of, predict_outputs, session
from vision.data.dataset import Splits, load_splits, to_tensor
from vision.data.streams import Images
from vision.dependability.calibration import expected_calibration_error, fit_temperature, reliability_rows
from vision.dependability.explain import Explanations, explain
from vision.dependability.figures import gradcam_gallery
from vision.dependability.head_ood import Outputs, head_detectors
from vision.dependability.ood import DETECTORS
from vision.dependability.ood_assessment import OodAssessment, Populations, assess_detectors
from vision.dependability.ood_sets import ood_sets, selection_sets
from vision.dependability.robustness import CorruptionResult, family_figures, robustness, summary


@dataclass
class Assessment:
    """What the classifier's stage measures: the shared figures (OOD, robustness, calibration) and what only a
    classifier has (test recall per class, Grad-CAM and its faithfulness)."""

    accuracy: float
    ood: OodAssessment
    calibration: assessing.Calibration
    clean_accuracy: float
    corruptions: list[CorruptionResult]
    explanations: Explanations
    explained: list[int]
    """Test-split indices of the explained images."""
    predicted: np.ndarray
    recall: list[float]
    """Test recall of each class, by class index: the share of its images the model gets right."""


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
        head = (classifier.weight.detach().numpy(), classifier.bias.detach().numpy())
        seen = Populations(val_out, test_out, set_outputs, {s.name: s.kind for s in (*sets, *picking)},
                           picking_outputs)
        ood = assess_detectors(head_detectors(train_out, train.labels, head, member_state), seen, plan.detector,
                               on_detector=lambda name: shown.update(1, f"OOD detector {name} measured"))
        temperature = fit_temperature(val_out.logits, val.labels)
        clean, corruptions = robustness(
            lambda images: run(images).logits.argmax(1), test.images, test.labels, plan.corruptions, plan.severities,
            plan.trained_on, seed,
            on_result=lambda r: shown.update(1, f"{r.corruption} severity {r.severity}: accuracy {r.accuracy:.3f}"))
        chosen = explained_indices(test.labels, predicted, plan.gradcam_samples, seed)
        explanations = explain(candidate, onnx_forward(sess), to_tensor(test.images[chosen]), predicted[chosen],
                               seed)
        shown.update(1, f"Grad-CAM on {len(chosen)} images")
    calibration = assessing.Calibration(
        temperature, "ece", "ECE", expected_calibration_error(test_out.logits, test.labels),
        expected_calibration_error(test_out.logits, test.labels, temperature),
        reliability_rows(test_out.logits, test.labels), reliability_rows(test_out.logits, test.labels, temperature),
        "accuracy", "test images", "reliability (test split)")
    return Assessment(
        accuracy=round(float((predicted == test.labels).mean()), 6), ood=ood, calibration=calibration,
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


def shared_assessment(result: Assessment, variant: str, classes: list[str] | None = None,
                      unreadable: list[str] | None = None) -> assessing.Assessment:
    """The classifier's measurements in the shape every task's dependability outputs are written from."""
    robust = summary(result.clean_accuracy, result.corruptions)
    e = result.explanations
    return assessing.Assessment(
        head={"variant": variant, "accuracy": result.accuracy,
              "recall_by_class": {_name(classes or [], c): r for c, r in enumerate(result.recall)}},
        ood=result.ood, unreadable=unreadable or [],
        robustness=assessing.Robustness(
            result.clean_accuracy, result.corruptions,
            {**{k: robust[k] for k in ("clean_accuracy", "mean_ratio", "held_out_mean_ratio", "seen_mean_ratio",
                                       "held_out", "worst")},
             "families": family_drops(result.clean_accuracy, result.corruptions, classes)},
            assessing.robustness_rows(result.clean_accuracy, result.corruptions, "accuracy"),
            "accuracy under corruptions (deployable model)", "accuracy", classes),
        calibration=result.calibration,
        explain={"samples": len(result.explained), "road_gradcam": e.road_gradcam, "road_random": e.road_random,
                 "gradcam_beats_random": e.beats_random,
                 "randomised_rank_correlation": e.randomised_rank_correlation},
        figure="accuracy",
        notes=(f"corrupted/clean {robust['mean_ratio']} (held-out {robust['held_out_mean_ratio']}); ROAD Grad-CAM "
               f"{e.road_gradcam} vs random {e.road_random}"))


def metrics(result: Assessment, variant: str, classes: list[str] | None = None) -> dict[str, object]:
    """The figures the gate reads, in one JSON that `dvc metrics diff` can compare between commits."""
    return assessing.metrics(shared_assessment(result, variant, classes))


def main(ctx: StageContext) -> None:
    seed: int = ctx.spec("seed")
    plan = Plan.from_spec(ctx, explains=True)
    export_dir = ctx.input("deployable")
    preprocess = Preprocessing.from_dict(read_json(export_dir / PREPROCESS_FILE))
    classes, size_px = preprocess.classes, preprocess.input_size_px
    splits = load_splits(ctx.input("images"), ctx.input("split"), classes, size_px)
    candidate, _ = load_candidate(ctx.input("candidates"), preprocess.variant.rsplit("-", 1)[0])
    extra, unreadable = assessing.extra_ood_sets(ctx, size_px)
    members = sorted(ctx.input("ensemble").glob("member-*/model.onnx")) \
        if ctx.spec("active_learning.ensemble") is not None else []
    result = assess(export_dir / MODEL_FILE, candidate, splits, plan, seed, extra, members)
    assessing.write_assessment(ctx, shared_assessment(result, preprocess.variant, classes, unreadable))
    gradcam_gallery(splits.test, result.predicted, result.explained, result.explanations.maps, classes,
                    ctx.output("gradcam_png"), f"{ctx.project}: Grad-CAM on the deployable candidate")


if __name__ == "__main__":
    from core.contracts.classification.dependability import CONTRACT

    run_stage(CONTRACT, main)
