"""validate (detection): the data-quality gate for boxes, a great-expectations suite from data.quality and
data.boxes, run as a checkpoint with the same mechanics (and Data Docs) as for classification.

The suite checks one row per box: its class is one of `classes` and every class has boxes; boxes and images
per class reach their minimums; the imbalance of boxes between classes, the boxes per image, each box's
share of its image and its elongation stay within bounds; and the shares of quarantined boxes and images
stay small. On failure it exits non-zero with one line per failed check saying what to change.
"""

from __future__ import annotations

from collections import Counter

import great_expectations.expectations as gxe
import pandas as pd

from core.fsutil import read_csv
from core.spec.data import BoxSection, Quality
from stages.runtime import StageContext, StageFailure, run_stage
from stages.validate import gate_data
from vision.data.quality import CheckResult


def box_table(images: list[dict[str, str]], boxes: list[dict[str, str]], quarantined_images: int,
              quarantined_boxes: int) -> pd.DataFrame:
    """One row per box with the facts the suite checks, per box and per class."""
    size = {row["path"]: (int(row["width"]), int(row["height"])) for row in images}
    table = pd.DataFrame(boxes, columns=["path", "label", "x1", "y1", "x2", "y2"])
    table = table.astype({"x1": float, "y1": float, "x2": float, "y2": float})
    width, height = table["x2"] - table["x1"], table["y2"] - table["y1"]
    image_area = table["path"].map(lambda p: size[p][0] * size[p][1]).astype(float)
    table["area_fraction"] = (width * height / image_area).round(6)
    table["aspect_ratio"] = (pd.concat([width / height, height / width], axis=1).max(axis=1)).round(4)
    table["boxes_in_image"] = table["path"].map(Counter(table["path"])).astype(int)
    instances = Counter(table["label"])
    images_with = Counter(label for _, label in set(zip(table["path"], table["label"], strict=True)))
    table["class_instances"] = table["label"].map(instances).astype(int)
    table["class_images"] = table["label"].map(images_with).astype(int)
    table["instance_imbalance"] = (max(instances.values()) / min(instances.values())) if instances else 0.0
    read = len(table) + quarantined_boxes
    table["quarantined_box_fraction"] = quarantined_boxes / read if read else 0.0
    seen = len(images) + quarantined_images
    table["corrupt_fraction"] = quarantined_images / seen if seen else 0.0
    return table


def expectations(quality: Quality, boxes: BoxSection, classes: list[str]) -> list[object]:
    smallest, largest = boxes.area_fraction
    return [
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=classes),
        gxe.ExpectColumnDistinctValuesToContainSet(column="label", value_set=classes),
        gxe.ExpectColumnMinToBeBetween(column="class_instances", min_value=boxes.min_instances_per_class),
        gxe.ExpectColumnMinToBeBetween(column="class_images", min_value=quality.min_images_per_class),
        gxe.ExpectColumnMaxToBeBetween(column="instance_imbalance", max_value=boxes.max_instance_imbalance),
        gxe.ExpectColumnMaxToBeBetween(column="boxes_in_image", max_value=boxes.max_boxes_per_image),
        gxe.ExpectColumnValuesToBeBetween(column="area_fraction", min_value=smallest, max_value=largest),
        gxe.ExpectColumnValuesToBeBetween(column="aspect_ratio", max_value=boxes.max_aspect_ratio),
        gxe.ExpectColumnMaxToBeBetween(column="quarantined_box_fraction", max_value=boxes.max_quarantined_fraction),
        gxe.ExpectColumnMaxToBeBetween(column="corrupt_fraction", max_value=quality.max_corrupt_fraction),
    ]


def _short_classes(table: pd.DataFrame, column: str, minimum: float) -> dict[str, int]:
    per_class = table.groupby("label")[column].first()
    return {label: int(n) for label, n in per_class.items() if n < minimum}


EXPLAIN_MAX = {
    "instance_imbalance": lambda c, kw: (
        f"box imbalance {c.observed:.2f} exceeds {kw['max_value']:g} (most/least frequent class); add boxes of the "
        f"rare classes or raise data.boxes.max_instance_imbalance to {c.observed:.2f}"),
    "boxes_in_image": lambda c, kw: (
        f"an image holds {c.observed} boxes, more than {kw['max_value']}; check its annotation or raise "
        "data.boxes.max_boxes_per_image"),
    "quarantined_box_fraction": lambda c, kw: (
        f"{c.observed:.1%} of boxes were quarantined, more than {kw['max_value']:.1%}; see box_quarantine.csv, "
        "or raise data.boxes.max_quarantined_fraction"),
    "corrupt_fraction": lambda c, kw: (
        f"{c.observed:.1%} of images were quarantined, more than {kw['max_value']:.1%}; see quarantine.csv, or "
        "raise data.quality.max_corrupt_fraction"),
}


def explain(check: CheckResult, table: pd.DataFrame) -> str:
    """One line a person can act on: what failed, by how much, which spec key to change."""
    kind, kw = check.expectation, check.kwargs
    if kind == "expect_column_values_to_be_in_set":
        return f"boxes of classes outside classes: {sorted(set(check.unexpected_examples))}"
    if kind == "expect_column_distinct_values_to_contain_set":
        missing = sorted(set(kw["value_set"]) - set(table["label"]))
        return f"classes with no boxes: {missing}; annotate some or remove them from classes"
    if kind == "expect_column_min_to_be_between" and kw["column"] == "class_instances":
        return (f"classes below {kw['min_value']} boxes: {_short_classes(table, 'class_instances', kw['min_value'])}; "
                "annotate more or lower data.boxes.min_instances_per_class")
    if kind == "expect_column_min_to_be_between":
        return (f"classes seen in fewer than {kw['min_value']} images: "
                f"{_short_classes(table, 'class_images', kw['min_value'])}; add images or lower "
                "data.quality.min_images_per_class")
    if kind == "expect_column_max_to_be_between":
        return EXPLAIN_MAX[kw["column"]](check, kw)
    if kw.get("column") == "area_fraction":
        return (f"{check.unexpected_count} boxes cover a share of their image outside "
                f"[{kw['min_value']:g}, {kw['max_value']:g}] (e.g. {check.unexpected_examples[:3]}); fix them or "
                "widen data.boxes.area_fraction")
    return (f"{check.unexpected_count} boxes are more elongated than {kw['max_value']:g}:1 (e.g. "
            f"{check.unexpected_examples[:3]}); fix them or raise data.boxes.max_aspect_ratio")


def main(ctx: StageContext) -> None:
    quality: Quality = ctx.spec("data.quality")
    boxes: BoxSection = ctx.spec("data.boxes")
    classes: list[str] = ctx.spec("classes")
    images = read_csv(ctx.input("manifest"))
    box_rows = read_csv(ctx.input("boxes"))
    quarantined, quarantined_boxes = len(read_csv(ctx.input("quarantine"))), len(read_csv(ctx.input("box_quarantine")))
    if not box_rows:
        raise StageFailure(f"no boxes were ingested ({len(images)} images, {quarantined_boxes} boxes quarantined); "
                           f"see {ctx.input('box_quarantine')}")
    table = box_table(images, box_rows, quarantined, quarantined_boxes)
    gate_data(ctx, table, expectations(quality, boxes, classes), explain, f"{len(images)} images, {len(table)} boxes")


if __name__ == "__main__":
    from core.contracts.detection.validate import CONTRACT

    run_stage(CONTRACT, main)
