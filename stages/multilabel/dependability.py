"""dependability (multi-label): how the deployable tagger behaves where the test split does not look, measured on
the file that serves (`models/<p>/export/model.onnx` through ONNX Runtime).

- out of distribution: every post-hoc detector on the same far and near sets as a classifier's (real photos,
  noise, the spec's `ood_sources`; shuffled patches, heavy occlusion), fitted on the training features as one
  population (a tagger has no class per image), thresholded to accept 95% of validation images;
- robustness: test mAP over tags under each corruption family and severity, families never seen in training
  reported apart, and each tag's AP drop per family (a tag that collapses under a corruption the mean hides);
- calibration: binary ECE over every (image, tag) pair and per tag, before and after one temperature fitted on
  validation, with the reliability diagram.
The temperature and the OOD detector's state are saved for serving; the tags' thresholds ship with the export.
Grad-CAM is not measured for taggers yet (a map per tag is the open question: which tags to explain).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.fsutil import read_json
from core.progress import Progress
from runtime.bundle import MODEL_FILE, PREPROCESS_FILE, Preprocessing
from stages import assessing
from stages.assessing import Plan
from stages.runtime import StageContext, run_stage
from vision.compression.candidates import load_candidate
from vision.compression.onnx import predict_outputs, session
from vision.data.dataset import load_tagged_splits
from vision.data.streams import Images
from vision.dependability.head_ood import Outputs, head_detectors
from vision.dependability.ood_assessment import Populations, assess_detectors
from vision.dependability.ood_sets import ood_sets, selection_sets
from vision.dependability.robustness import CorruptionResult, corrupted_stream, figure_robustness
from vision.dependability.tag_calibration import (
    fit_tag_temperature,
    per_tag_calibration_error,
    tag_calibration_error,
    tag_reliability_rows,
)
from vision.dependability.tag_robustness import per_tag_drops, tag_average_precisions
from vision.tasks.multilabel import mean_average_precision, sigmoid, tag_metrics

TagAps = list[tuple[str, dict[str, float]]]
"""(corruption, each tag's AP) per corruption and severity."""


def map_under_corruptions(logits_of: Callable[[Images], np.ndarray], images: Images, targets: np.ndarray, plan: Plan,
                          seed: int, classes: list[str]) -> tuple[list[CorruptionResult], TagAps]:
    """Test mAP over tags per corruption x severity (the `accuracy` field of each result holds the mAP, which the
    shared heatmap draws under its own name), and each tag's AP there."""
    results, per_tag = [], []
    for name in plan.corruptions:
        for severity in plan.severities:
            logits = logits_of(corrupted_stream(images, name, severity, seed))
            value = mean_average_precision(targets, logits)
            results.append(CorruptionResult(name, severity, round(value, 6), name in plan.trained_on))
            per_tag.append((name, tag_average_precisions(targets, logits, classes)))
    return results, per_tag


# Over 40 lines: the stage reads its inputs, measures each figure with a library call and names them for the shared
# writer; splitting it would only pass the same dozen values around.
def main(ctx: StageContext) -> None:
    seed: int = ctx.spec("seed")
    plan = Plan.from_spec(ctx, explains=False)
    export_dir = ctx.input("deployable")
    preprocess = Preprocessing.from_dict(read_json(export_dir / PREPROCESS_FILE))
    classes, size_px = list(preprocess.classes), preprocess.input_size_px
    thresholds = np.asarray(preprocess.thresholds, np.float64)
    splits = load_tagged_splits(ctx.input("images"), ctx.input("tags"), ctx.input("split"), classes, size_px)
    train, val, test = splits.train, splits.val, splits.test
    candidate, _ = load_candidate(ctx.input("candidates"), preprocess.variant.rsplit("-", 1)[0])
    extra, unreadable = assessing.extra_ood_sets(ctx, size_px)
    sess = session(export_dir / MODEL_FILE)

    def run(images: Images) -> Outputs:
        return Outputs(*predict_outputs(sess, images))

    with Progress("dependability", 3, unit="step") as shown:
        train_out, val_out, test_out = run(train.images), run(val.images), run(test.images)
        sets = ood_sets(test.images, size_px, seed, extra)
        picking = selection_sets(val.images, size_px, seed) if plan.detector == "auto" else []
        head = candidate.get_classifier()
        fits = head_detectors(train_out, np.zeros(len(train.paths), np.int64),
                              (head.weight.detach().numpy(), head.bias.detach().numpy()))
        ood = assess_detectors(fits, Populations(val_out, test_out, {s.name: run(s.images) for s in sets},
                                                 {s.name: s.kind for s in (*sets, *picking)},
                                                 {s.name: run(s.images) for s in picking}), plan.detector)
        shown.update(1, f"OOD: {ood.detector}")
        clean = round(mean_average_precision(test.labels, test_out.logits), 6)
        sweep, sweep_per_tag = map_under_corruptions(lambda images: run(images).logits, test.images, test.labels,
                                                     plan, seed, classes)
        shown.update(1, f"{len(sweep)} corrupted conditions")
        temperature = fit_tag_temperature(val_out.logits, val.labels)
        shown.update(1, f"temperature {temperature:.3f}")
    figures_at = tag_metrics(test.labels, sigmoid(test_out.logits), classes, thresholds)
    robustness = figure_robustness(clean, sweep, "map")
    assessing.write_assessment(ctx, assessing.Assessment(
        head={"task": "multilabel", "variant": preprocess.variant, "map": figures_at["map"],
              "macro_f1": figures_at["macro_f1"], "micro_f1": figures_at["micro_f1"],
              "per_tag": {tag: {k: row[k] for k in ("ap", "f1", "precision", "recall", "threshold", "support")}
                          for tag, row in figures_at["per_class"].items()}},
        ood=ood, unreadable=unreadable,
        robustness=assessing.Robustness(
            clean, sweep,
            {**robustness, "per_tag_drop": per_tag_drops(tag_average_precisions(test.labels, test_out.logits, classes),
                                                         sweep_per_tag)},
            assessing.robustness_rows(clean, sweep, "map"),
            "test mAP over tags under corruptions (deployable model)", "mAP"),
        calibration=assessing.Calibration(
            temperature, "ece", "ECE", tag_calibration_error(test_out.logits, test.labels),
            tag_calibration_error(test_out.logits, test.labels, temperature),
            tag_reliability_rows(test_out.logits, test.labels),
            tag_reliability_rows(test_out.logits, test.labels, temperature), "share_tagged", "image-tag pairs",
            "tag reliability (test split, every image x tag)",
            {"per_tag_ece_after": per_tag_calibration_error(test_out.logits, test.labels, classes, temperature)}),
        explain=None, figure="map"))


if __name__ == "__main__":
    from core.contracts.multilabel.dependability import CONTRACT

    run_stage(CONTRACT, main)
