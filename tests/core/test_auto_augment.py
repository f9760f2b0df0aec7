"""`augment: auto`: a spec that states no augmentation trains on what its own gate tests it against."""

from __future__ import annotations

import math
from typing import get_args

import pytest

from core.spec import ProjectSpec
from core.spec.deployment import Corruption, Robustness
from core.spec.training import AugmentSection

RAW = {"name": "fabric", "classes": ["a", "b"], "data": {"sources": [{"kind": "sklearn_digits"}]}}
ROBUSTNESS = ["fog", "low_light", "motion_blur", "pixelate", "occlusion", "gaussian_noise"]


def _on(augment: AugmentSection) -> dict[str, float]:
    return {name: value for name, value in augment.model_dump().items() if name != "severity" and value > 0}


def test_every_family_the_gate_can_test_is_an_augmentation() -> None:
    assert set(get_args(Corruption)) <= set(AugmentSection.model_fields)


def test_a_spec_without_augment_trains_on_the_default_gate_s_families_leaving_half_the_images_clean() -> None:
    augment = ProjectSpec.model_validate(RAW).augment
    assert sorted(_on(augment)) == sorted(Robustness().corruptions) == sorted(ROBUSTNESS)
    assert augment.severity == max(Robustness().severities) == 3
    assert math.prod(1 - p for p in _on(augment).values()) == pytest.approx(0.5, abs=0.005)
    assert ProjectSpec.model_validate({**RAW, "augment": "auto"}).augment == augment


def test_auto_follows_the_conditions_the_spec_states() -> None:
    camera = {"dependability": {"robustness": {"corruptions": ["gaussian_noise", "motion_blur"], "severities": [1, 2]}}}
    augment = ProjectSpec.model_validate({**RAW, **camera}).augment
    assert set(_on(augment)) == {"gaussian_noise", "motion_blur"}
    assert augment.severity == 2
    assert _on(augment)["gaussian_noise"] == pytest.approx(1 - 0.5 ** 0.5, abs=0.001)
    none_tested = {"dependability": {"robustness": {"corruptions": []}}}
    assert _on(ProjectSpec.model_validate({**RAW, **none_tested}).augment) == {}


def test_a_stated_augment_is_kept_as_written() -> None:
    assert _on(ProjectSpec.model_validate({**RAW, "augment": {"fog": 0.1}}).augment) == {"fog": 0.1}
    assert _on(ProjectSpec.model_validate({**RAW, "augment": {}}).augment) == {}


def test_the_training_pipeline_draws_every_auto_family() -> None:
    pytest.importorskip("albumentations")
    from vision.training.augment import enabled, training_pipeline

    augment = ProjectSpec.model_validate(RAW).augment
    assert sorted(enabled(augment)) == sorted(ROBUSTNESS)
    assert len(training_pipeline(augment, 64, 0).transforms) == len(ROBUSTNESS)
