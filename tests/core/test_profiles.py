"""Hardware profiles and the spec's `target.hardware` choices are one list."""

from __future__ import annotations

import typing

from core.profiles import PROFILES
from core.spec.deployment import TargetSection


def test_every_selectable_target_has_a_profile_and_vice_versa() -> None:
    choices = set(typing.get_args(TargetSection.model_fields["hardware"].annotation))
    assert choices == set(PROFILES)


def test_profiles_set_equal_requests_and_a_known_precision() -> None:
    for profile in PROFILES.values():
        assert profile.precision in {"int8", "fp16", "fp32"}
        assert {"cpu", "memory"} <= set(profile.resources)
