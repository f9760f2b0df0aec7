"""The gate's checks: inclusive limits, margins, and a readable reason with what to change for each failure."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from core.spec.deployment import CompressionBudget
from vision.dependability.ood import ood_metrics, threshold_at_tpr
from vision.dependability.verdict import (
    Check,
    Thresholds,
    budget_checks,
    dependability_checks,
    verdict,
    warnings,
)

FIGURES = {
    "variant": "pruned-int8", "accuracy": 0.97,
    "ood": {"detector": "energy", "far_auroc": 0.96, "far_fpr_at_95_tpr": 0.2, "far_accepted_fraction": 0.18,
            "near_auroc": 0.8, "inverted_sets": [], "sets": {}},
    "robustness": {"families": {"fog": {"mean_accuracy": 0.9, "drop": 0.07, "seen_in_training": True},
                                "gaussian_noise": {"mean_accuracy": 0.8, "drop": 0.17, "seen_in_training": False}}},
    "calibration": {"temperature": 1.4, "ece_before": 0.04, "ece_after": 0.012},
}
OOD_REPORT = {
    "set_kinds": {"photos": "far", "noise": "far", "occlusion": "near"},
    "detectors": {"energy": {"photos": {"auroc": 0.96, "accepted_fraction": 0.18},
                             "noise": {"auroc": 0.99, "accepted_fraction": 0.04},
                             "occlusion": {"auroc": 0.8, "accepted_fraction": 0.5}},
                  "knn": {"photos": {"auroc": 0.995, "accepted_fraction": 0.03},
                          "noise": {"auroc": 0.999, "accepted_fraction": 0.0},
                          "occlusion": {"auroc": 0.7, "accepted_fraction": 0.6}},
                  "msp": {"photos": {"auroc": 0.9, "accepted_fraction": 0.3},
                          "noise": {"auroc": 0.93, "accepted_fraction": 0.2},
                          "occlusion": {"auroc": 0.85, "accepted_fraction": 0.4}}}}
EXPORT = {"params": 90_000, "macs": 10_000_000, "latency_ms_1_thread": 0.4, "val_accuracy_drop": 0.002}


def _limits(**overrides: float) -> Thresholds:
    values = {"min_accuracy": 0.95, "min_auroc": 0.95, "max_accepted_fraction": 0.2, "max_accuracy_drop": 0.2,
              "max_ece": 0.05} | overrides
    return Thresholds(**values)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_model_within_every_limit_passes() -> None:
    checks = dependability_checks(FIGURES, OOD_REPORT, _limits()) + budget_checks(EXPORT, CompressionBudget(
        max_params=100_000, max_macs=11_000_000, max_latency_ms=1.0, max_accuracy_drop=0.005))
    result = verdict("digits", "pruned-int8", checks)
    assert result["passed"]
    assert result["failed"] == []
    assert [c["name"] for c in result["checks"]] == [
        "accuracy", "ood_auroc", "ood_accepted_fraction",
        "robustness.fog", "robustness.gaussian_noise", "calibration_ece", "budget.params",
        "budget.macs", "budget.latency_ms", "budget.accuracy_drop"]
    assert all(c["margin"] >= 0 for c in result["checks"])


@pytest.mark.parametrize(("limit", "value", "name"), [
    ("min_accuracy", 0.97, "accuracy"), ("min_auroc", 0.96, "ood_auroc"),
    ("max_accepted_fraction", 0.18, "ood_accepted_fraction"),
    ("max_accuracy_drop", 0.17, "robustness.gaussian_noise"), ("max_ece", 0.012, "calibration_ece")])
def test_a_limit_exactly_at_the_measured_value_passes_and_a_hair_stricter_fails(limit: str, value: float,
                                                                                 name: str) -> None:
    at = _by_name(dependability_checks(FIGURES, OOD_REPORT, _limits(**{limit: value})))[name]
    assert at.passed
    assert at.margin == 0
    stricter = value + 1e-6 if limit.startswith("min") else value - 1e-6
    beyond = _by_name(dependability_checks(FIGURES, OOD_REPORT, _limits(**{limit: stricter})))[name]
    assert not beyond.passed
    assert beyond.margin == pytest.approx(-1e-6)


def test_each_failure_names_the_spec_key_the_shortfall_and_what_to_change() -> None:
    weak = copy.deepcopy(FIGURES)
    weak["accuracy"] = 0.4
    weak["calibration"]["ece_after"] = 0.2
    checks = dependability_checks(weak, OOD_REPORT, _limits(max_accuracy_drop=0.1, min_auroc=0.98))
    failed = _by_name([c for c in checks if not c.passed])
    assert set(failed) == {"accuracy", "ood_auroc", "robustness.gaussian_noise", "calibration_ece"}
    assert failed["accuracy"].line().startswith("accuracy: measured 0.4, dependability.min_accuracy needs at least "
                                                "0.95 (short by 0.55); train longer")
    assert "set dependability.ood.detector: knn" in failed["ood_auroc"].line()  # the detector that does reach it
    assert failed["robustness.gaussian_noise"].hint.startswith(
        "add gaussian_noise to the training augmentations (augment.gaussian_noise)")  # never trained on
    assert "needs at most 0.1" in failed["robustness.gaussian_noise"].line()
    assert _by_name(checks)["robustness.fog"].passed  # a drop of 0.07 is within 0.1


def test_a_failing_corruption_that_training_can_cover_points_at_its_augmentation() -> None:
    figures = copy.deepcopy(FIGURES)
    figures["robustness"]["families"]["fog"] = {"mean_accuracy": 0.5, "drop": 0.47, "seen_in_training": False}
    fog = _by_name(dependability_checks(figures, OOD_REPORT, _limits()))["robustness.fog"]
    assert not fog.passed
    assert "augment.fog" in fog.hint
    figures["robustness"]["families"]["fog"]["seen_in_training"] = True
    fog = _by_name(dependability_checks(figures, OOD_REPORT, _limits()))["robustness.fog"]
    assert "raise augment.fog or augment.severity" in fog.hint


def test_only_the_budget_limits_that_are_set_are_checked() -> None:
    checks = _by_name(budget_checks(EXPORT, CompressionBudget(max_macs=9_000_000)))
    assert set(checks) == {"budget.macs", "budget.accuracy_drop"}
    assert not checks["budget.macs"].passed
    assert checks["budget.macs"].margin == -1_000_000
    assert "relax compress.budget.max_macs" in checks["budget.macs"].line()


def _far_set_figures(id_scores: np.ndarray, far_scores: np.ndarray) -> dict:
    """What the dependability stage writes for one far set scored by the chosen detector at its serving
    threshold (95% of the in-distribution scores accepted)."""
    threshold = threshold_at_tpr(id_scores)
    metrics = ood_metrics(id_scores, far_scores, serving_threshold=threshold)
    return {"detector": "energy", "far_auroc": metrics.auroc, "far_fpr_at_95_tpr": metrics.fpr_at_95_tpr,
            "far_accepted_fraction": metrics.accepted_fraction, "near_auroc": 0.9,
            "inverted_sets": ["photos"] if metrics.inverted else [], "sets": {"photos": dataclasses.asdict(metrics)}}


def test_a_detector_whose_auroc_passes_while_serving_accepts_every_far_image_fails_the_gate() -> None:
    # In-distribution scores spread over 0..1000; every far image scores just below the serving threshold, above
    # 94% of in-distribution images: the ranking is good (AUROC 0.94) yet serving answers every one of them.
    id_scores = np.arange(1000, dtype=float)
    far_scores = np.full(200, 945.0)
    figures = copy.deepcopy(FIGURES) | {"ood": _far_set_figures(id_scores, far_scores)}
    assert figures["ood"]["far_auroc"] >= 0.9
    assert figures["ood"]["far_fpr_at_95_tpr"] == 1.0
    report = {"set_kinds": {"photos": "far"},
              "detectors": {"energy": {"photos": {"auroc": figures["ood"]["far_auroc"], "accepted_fraction": 1.0}},
                            "knn": {"photos": {"auroc": 0.91, "accepted_fraction": 0.05}}}}
    checks = _by_name(dependability_checks(figures, report, _limits(min_auroc=0.9)))
    assert checks["ood_auroc"].passed
    accepted = checks["ood_accepted_fraction"]
    assert not accepted.passed
    assert accepted.line().startswith("ood_accepted_fraction: measured 1, dependability.ood.max_accepted_fraction "
                                      "needs at most 0.2 (short by 0.8); knn reaches 0.05")
    assert not verdict("p", "v", list(checks.values()))["passed"]


def test_an_inverted_detector_is_named_in_a_warning() -> None:
    id_scores = np.arange(100, dtype=float)
    figures = copy.deepcopy(FIGURES) | {"ood": _far_set_figures(id_scores, id_scores - 80)}  # far look familiar
    assert figures["ood"]["far_auroc"] < 0.5
    [note] = warnings(figures)
    assert note.startswith("energy is inverted on photos (AUROC ")
    assert "dependability.ood.detector: auto" in note
    assert warnings(FIGURES) == []


def test_the_accuracy_hint_names_the_classes_with_the_lowest_recall() -> None:
    figures = copy.deepcopy(FIGURES) | {"accuracy": 0.71,
                                        "recall_by_class": {"nominal": 0.99, "local_defect": 0.013, "texture": 0.9}}
    check = _by_name(dependability_checks(figures, OOD_REPORT, _limits()))["accuracy"]
    assert not check.passed
    assert check.hint.startswith("lowest per-class recall: 'local_defect' 0.013, 'texture' 0.9, 'nominal' 0.99 (a "
                                 "rare class: add images or balance it; a small detail: raise model.input_size_px)")


def test_a_corruption_the_model_collapses_under_is_named_with_the_class_and_the_label_caveat() -> None:
    figures = copy.deepcopy(FIGURES)
    figures["robustness"]["families"]["gaussian_noise"] |= {
        "drop": 0.6, "collapsed": [{"severity": 2, "class": "defect", "share": 0.93},
                                   {"severity": 3, "class": "defect", "share": 1.0}]}
    check = _by_name(dependability_checks(figures, OOD_REPORT, _limits()))["robustness.gaussian_noise"]
    assert not check.passed
    assert check.hint.startswith("the model collapses to one class: at severity 3 it answers 'defect' for 100% of "
                                 "the images; ")
    assert check.hint.endswith("dependability.robustness.corruptions is your statement of conditions that do not "
                               "change the label: if gaussian_noise can change it on your data (noise or low light "
                               "that looks like a defect, blur that hides one), remove it from the list instead")
    fog = _by_name(dependability_checks(figures, OOD_REPORT, _limits()))["robustness.fog"]
    assert "collapses" not in fog.hint


def test_a_class_below_min_class_recall_fails_the_gate_although_accuracy_passes() -> None:
    figures = copy.deepcopy(FIGURES) | {"accuracy": 0.97,
                                        "recall_by_class": {"nominal": 0.995, "local_defect": 0.4, "texture": 0.97}}
    assert "class_recall" not in _by_name(dependability_checks(figures, OOD_REPORT, _limits()))  # not asked for
    checks = _by_name(dependability_checks(figures, OOD_REPORT, _limits(min_class_recall=0.8)))
    assert checks["accuracy"].passed
    recall = checks["class_recall"]
    assert not recall.passed
    assert recall.line().startswith("class_recall: measured 0.4, dependability.min_class_recall needs at least 0.8 "
                                    "(short by 0.4); below the limit: 'local_defect' 0.4; balance the classes")
