"""Robustness per tag: each tag's AP drop per corruption family, and the largest one named, so a tag that
collapses under one corruption is seen although the mean over tags holds."""

from __future__ import annotations

import numpy as np

from vision.dependability.tag_robustness import per_tag_drops, tag_average_precisions, worst_tag_drop


def test_each_tag_s_average_precision_leaves_out_tags_no_image_carries() -> None:
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    scores = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.7, 0.6, 0.3], [0.1, 0.7, 0.4]])
    aps = tag_average_precisions(targets, scores, ["night", "rain", "tunnel"])
    assert set(aps) == {"night", "rain"}
    assert aps["night"] == 1.0
    assert aps["rain"] < 1.0


def test_a_tag_that_collapses_under_one_family_is_the_worst_drop() -> None:
    clean = {"night": 0.9, "rain": 0.8}
    conditions = [("fog", {"night": 0.85, "rain": 0.78}), ("fog", {"night": 0.75, "rain": 0.76}),
                  ("low_light", {"night": 0.2, "rain": 0.79})]
    drops = per_tag_drops(clean, conditions)
    assert drops == {"night": {"fog": 0.1, "low_light": 0.7}, "rain": {"fog": 0.03, "low_light": 0.01}}
    assert worst_tag_drop({"per_tag_drop": drops}) == ("night", "low_light", 0.7)
    assert worst_tag_drop({"per_tag_drop": per_tag_drops(clean, [])}) is None
