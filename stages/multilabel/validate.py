"""validate (multi-label): the data-quality gate over the ingested images and their tags, a great-expectations
suite generated from `data.quality` and run as a checkpoint (stages.validate.gate_data).

The suite reads one row per image: enough images, every tag carried by at least `min_images_per_class` images
(a tag is a class here), the most carried tag at most `max_class_imbalance` times the least, unique pixels,
the minimum width and height and a bounded share of quarantined files. Images without tags are allowed (they
teach every tag what it is not).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import great_expectations.expectations as gxe
import pandas as pd

from core.fsutil import read_csv
from core.spec.data import Quality
from stages.runtime import StageContext, StageFailure, run_stage
from stages.validate import expectations as classifier_expectations
from stages.validate import explain as explain_image_check
from stages.validate import gate_data
from vision.data.quality import CheckResult


def tag_table(rows: list[dict[str, str]], tags: list[dict[str, str]], classes: list[str],
              quarantined: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """The manifest with the facts the suite needs per row, and how many images carry each tag."""
    table = pd.DataFrame(rows, columns=["path", "sha256", "width", "height"]).astype({"width": int, "height": int})
    carried = Counter(row["tag"] for row in tags)
    counts = {tag: carried.get(tag, 0) for tag in classes}
    table["fewest_tag_images"] = min(counts.values(), default=0)
    table["tag_imbalance"] = max(counts.values()) / max(min(counts.values()), 1) if counts else 0.0
    table["corrupt_fraction"] = quarantined / (len(table) + quarantined) if len(table) + quarantined else 0.0
    return table, counts


IMAGE_COLUMNS = ("sha256", "width", "height", "corrupt_fraction")
"""The columns of the checks on the images themselves, which a tagger's suite shares with a classifier's."""


def expectations(quality: Quality) -> list[object]:
    """The tag checks, then the classifier's checks of the images themselves (pixels, sizes, quarantine)."""
    images = [e for e in classifier_expectations(quality, []) if getattr(e, "column", None) in IMAGE_COLUMNS]
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=quality.min_images_per_class),
        gxe.ExpectColumnMinToBeBetween(column="fewest_tag_images", min_value=quality.min_images_per_class),
        gxe.ExpectColumnMaxToBeBetween(column="tag_imbalance", max_value=quality.max_class_imbalance),
        *images,
    ]


def explainer(counts: dict[str, int]) -> Callable[[CheckResult, pd.DataFrame], str]:
    """One line a person can act on per failed check: what failed, by how much, which spec key to change (the
    checks of the images themselves are explained as for a classifier)."""
    def explain(check: CheckResult, table: pd.DataFrame) -> str:
        limit = check.kwargs.get("min_value", check.kwargs.get("max_value"))
        if check.kwargs.get("column") == "fewest_tag_images":
            short = {tag: n for tag, n in counts.items() if n < limit}
            return (f"tags on fewer than {limit:g} images: {short}; tag more images or lower "
                    "data.quality.min_images_per_class (a tag no image carries cannot be learned: remove it from "
                    "classes)")
        if check.kwargs.get("column") == "tag_imbalance":
            return (f"tag imbalance {check.observed:.2f} exceeds {limit:g} (most / least carried tag: {counts}); "
                    "tag more images of the rare tags or raise data.quality.max_class_imbalance")
        if check.expectation == "expect_table_row_count_to_be_between":
            return (f"only {check.observed} images, fewer than {limit}: add data or lower "
                    "data.quality.min_images_per_class")
        return explain_image_check(check, table)  # pixels, sizes, quarantine: as for any task

    return explain


def main(ctx: StageContext) -> None:
    rows = read_csv(ctx.input("manifest"))
    quarantined = len(read_csv(ctx.input("quarantine")))
    if not rows:
        raise StageFailure(f"no images were ingested ({quarantined} quarantined); see {ctx.input('quarantine')}")
    table, counts = tag_table(rows, read_csv(ctx.input("tags")), list(ctx.spec("classes")), quarantined)
    gate_data(ctx, table, expectations(ctx.spec("data.quality")), explainer(counts),
              f"{len(table)} images, tags {counts}")


if __name__ == "__main__":
    from core.contracts.multilabel.validate import CONTRACT

    run_stage(CONTRACT, main)
