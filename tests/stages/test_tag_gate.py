"""The tagger's gate checks: a mean that passes cannot hide one tag below its floor, the failure names the
tags below it (and a tag no test image carries), and the budget reads the drop of validation mAP."""

from __future__ import annotations

import copy

from core.spec.deployment import CompressionBudget
from vision.dependability.tag_verdict import TagThresholds, tag_checks
from vision.dependability.verdict import budget_checks

PER_TAG = {"night": {"ap": 0.95, "support": 40}, "rain": {"ap": 0.9, "support": 30},
           "tunnel": {"ap": 0.41, "support": 6}}
FIGURES = {
    "map": 0.753, "per_tag": PER_TAG,
    "ood": {"detector": "knn", "far_auroc": 0.97, "far_accepted_fraction": 0.05},
    "robustness": {"families": {"fog": {"mean_map": 0.7, "drop": 0.05, "seen_in_training": True}}},
    "calibration": {"ece_after": 0.03},
}
OOD_REPORT = {"set_kinds": {"photos": "far"},
              "detectors": {"knn": {"photos": {"auroc": 0.97, "accepted_fraction": 0.05}}}}
LIMITS = TagThresholds(min_map=0.7, min_tag_ap=0.5, min_auroc=0.9, max_accepted_fraction=0.1, max_map_drop=0.1,
                       max_ece=0.05)


def _by_name(figures: dict, limits: TagThresholds = LIMITS) -> dict:
    return {c.name: c for c in tag_checks(figures, OOD_REPORT, limits)}


def test_one_tag_below_its_floor_fails_although_the_mean_passes() -> None:
    checks = _by_name(FIGURES)
    assert checks["map"].passed
    assert not checks["tag_ap"].passed
    assert checks["tag_ap"].measured == 0.41
    assert "'tunnel' 0.41 (6 test images)" in checks["tag_ap"].line()
    assert "'night'" not in checks["tag_ap"].hint
    assert [name for name, c in checks.items() if not c.passed] == ["tag_ap"]


def test_every_tag_at_or_above_the_floor_passes() -> None:
    assert _by_name(FIGURES, TagThresholds(0.7, 0.41, 0.9, 0.1, 0.1, 0.05))["tag_ap"].passed


def test_a_tag_no_test_image_carries_cannot_pass_its_floor() -> None:
    figures = copy.deepcopy(FIGURES)
    figures["per_tag"]["tunnel"] = {"ap": None, "support": 0}
    check = _by_name(figures)["tag_ap"]
    assert not check.passed
    assert "'tunnel' (no test image carries it: add some)" in check.hint


def test_the_tagger_s_budget_reads_the_drop_of_validation_map() -> None:
    export = {"params": 1000, "macs": 10_000, "latency_ms_1_thread": 0.2, "val_map_drop": 0.03}
    checks = {c.name: c for c in budget_checks(export, CompressionBudget(max_accuracy_drop=0.02), "val_map")}
    assert not checks["budget.map_drop"].passed
    assert checks["budget.map_drop"].spec_key == "compress.budget.max_accuracy_drop"
