"""The detection forms of validate and prune on hand-made tables: what the box suite reports and what the
pruning floor restores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from core.spec.data import BoxSection, Quality
from stages.detection.prune import keep_instances
from stages.detection.validate import box_table, expectations, explain
from vision.data.quality import run_checkpoint


def test_pruning_restores_dropped_images_until_every_class_keeps_its_minimum() -> None:
    paths = ["a", "b", "c", "d", "e"]
    boxes_of = {"a": Counter(car=3), "b": Counter(car=1, bike=1), "c": Counter(bike=2), "d": Counter(bike=1),
                "e": Counter()}
    selected = np.array([True, False, False, False, True])  # the selector kept a (3 cars) and a negative
    keep, restored = keep_instances(selected, paths, boxes_of, minimum=3)
    # bike has 0 boxes kept: c (2 bikes) comes back first, then b or d (1 each; b first in split order)
    assert keep.tolist() == [True, True, True, False, True]
    assert restored == 2
    keep, restored = keep_instances(selected, paths, boxes_of, minimum=10)  # more than the split has: all of it
    assert keep.tolist() == [True] * 5
    assert restored == 3


def test_the_box_suite_names_each_failed_check_and_the_key_to_change(tmp_path: Path) -> None:
    images = [{"path": f"i{n}.png", "width": "100", "height": "50"} for n in range(4)]
    boxes = [{"path": "i0.png", "label": "car", "x1": "0", "y1": "0", "x2": "10", "y2": "10"},
             {"path": "i0.png", "label": "car", "x1": "20", "y1": "0", "x2": "30", "y2": "10"},
             {"path": "i1.png", "label": "car", "x1": "0", "y1": "0", "x2": "100", "y2": "2"},   # 50:1 sliver
             {"path": "i2.png", "label": "car", "x1": "0", "y1": "0", "x2": "10", "y2": "10"},
             {"path": "i3.png", "label": "bike", "x1": "0", "y1": "0", "x2": "10", "y2": "10"}]
    table = box_table(images, boxes, quarantined_images=0, quarantined_boxes=2)
    suite = expectations(Quality(min_images_per_class=1), BoxSection(min_instances_per_class=2,
                                                                      max_instance_imbalance=3.0), ["car", "bike",
                                                                                                    "person"])
    checks, _ = run_checkpoint(table, suite, tmp_path / "docs", run_name="t")
    failed = {c.expectation + ":" + str(c.kwargs.get("column")): explain(c, table) for c in checks if not c.success}
    assert set(failed) == {"expect_column_distinct_values_to_contain_set:label",
                           "expect_column_min_to_be_between:class_instances",
                           "expect_column_max_to_be_between:instance_imbalance",
                           "expect_column_values_to_be_between:aspect_ratio",
                           "expect_column_max_to_be_between:quarantined_box_fraction"}
    assert "classes with no boxes: ['person']" in failed["expect_column_distinct_values_to_contain_set:label"]
    assert "{'bike': 1}" in failed["expect_column_min_to_be_between:class_instances"]
    assert "data.boxes.max_instance_imbalance to 4.00" in failed["expect_column_max_to_be_between:instance_imbalance"]
    assert "more elongated than 20:1" in failed["expect_column_values_to_be_between:aspect_ratio"]
    assert "28.6% of boxes were quarantined" in failed["expect_column_max_to_be_between:quarantined_box_fraction"]
    assert (tmp_path / "docs" / "index.html").is_file()
