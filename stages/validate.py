"""validate: the data-quality gate, a great-expectations suite generated from `data.quality`.

Runs before any compute is spent on embeddings or training. The suite checks
the ingested manifest: enough images overall and per class, every class
present, no label outside `classes`, bounded class imbalance, unique pixels,
minimum width/height and a bounded share of quarantined files. It writes GX's
validation result and Data Docs under `reports/<project>/validate/`; on failure
it exits non-zero with one line per failed check saying what to change.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import great_expectations.expectations as gxe
import pandas as pd

from core.fsutil import atomic_directory, read_csv, write_json
from core.spec.data import Quality
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.quality import CheckResult, run_checkpoint


def quality_table(rows: list[dict[str, str]], quarantined: int) -> pd.DataFrame:
    """The manifest plus the per-row facts the suite needs (class size, imbalance, quarantine share)."""
    table = pd.DataFrame(rows, columns=["path", "label", "sha256", "width", "height"])
    table = table.astype({"width": int, "height": int})
    counts = Counter(table["label"])
    table["class_images"] = table["label"].map(counts).astype(int)
    table["imbalance_ratio"] = (max(counts.values()) / min(counts.values())) if counts else 0.0
    table["corrupt_fraction"] = quarantined / (len(table) + quarantined) if len(table) + quarantined else 0.0
    return table


def expectations(quality: Quality, classes: list[str]) -> list[object]:
    min_width, min_height = quality.min_size_px
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=quality.min_images_per_class * len(classes)),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=classes),
        gxe.ExpectColumnDistinctValuesToContainSet(column="label", value_set=classes),
        gxe.ExpectColumnMinToBeBetween(column="class_images", min_value=quality.min_images_per_class),
        gxe.ExpectColumnMaxToBeBetween(column="imbalance_ratio", max_value=quality.max_class_imbalance),
        gxe.ExpectColumnValuesToBeUnique(column="sha256"),
        gxe.ExpectColumnValuesToBeBetween(column="width", min_value=min_width),
        gxe.ExpectColumnValuesToBeBetween(column="height", min_value=min_height),
        gxe.ExpectColumnMaxToBeBetween(column="corrupt_fraction", max_value=quality.max_corrupt_fraction),
    ]


def explain(check: CheckResult, table: pd.DataFrame) -> str:
    """One line a person can act on: what failed, by how much, which spec key to change."""
    kind, kw = check.expectation, check.kwargs
    if kind == "expect_table_row_count_to_be_between":
        return (f"only {check.observed} images; at least {kw['min_value']} needed (min_images_per_class x classes): "
                "add data or lower data.quality.min_images_per_class")
    if kind == "expect_column_values_to_be_in_set":
        return f"labels outside classes: {sorted(set(check.unexpected_examples))}; fix the data or add them to classes"
    if kind == "expect_column_distinct_values_to_contain_set":
        missing = sorted(set(kw["value_set"]) - set(table["label"]))
        return f"classes with no images: {missing}; add images or remove them from classes"
    if kind == "expect_column_min_to_be_between":
        counts = table.groupby("label").size()
        short = {label: int(n) for label, n in counts.items() if n < kw["min_value"]}
        return (f"classes below {kw['min_value']:g} images: {short} (short by up to "
                f"{kw['min_value'] - min(short.values()):g}); add images or lower data.quality.min_images_per_class")
    if kind == "expect_column_max_to_be_between" and kw["column"] == "imbalance_ratio":
        return (f"class imbalance {check.observed:.2f} exceeds {kw['max_value']:g} (largest/smallest class); "
                f"rebalance or raise data.quality.max_class_imbalance to {check.observed:.2f}")
    if kind == "expect_column_max_to_be_between":
        return (f"{check.observed:.1%} of files were quarantined, more than {kw['max_value']:.1%}; see "
                "quarantine.csv, or raise data.quality.max_corrupt_fraction")
    if kind == "expect_column_values_to_be_unique":
        return f"{check.unexpected_count} images share pixels with another; remove the copies"
    if kind == "expect_column_values_to_be_between":
        return (f"{check.unexpected_count} images narrower/lower than {kw['min_value']:g} px ({kw['column']}); "
                "lower data.quality.min_size_px")
    return f"{kind} failed: {check.kwargs}"


def main(ctx: StageContext) -> None:
    quality: Quality = ctx.spec("data.quality")
    classes: list[str] = ctx.spec("classes")
    rows = read_csv(ctx.input("manifest"))
    quarantined = len(read_csv(ctx.input("quarantine")))
    if not rows:
        raise StageFailure(f"no images were ingested ({quarantined} quarantined); see {ctx.input('quarantine')}")
    table = quality_table(rows, quarantined)
    gate_data(ctx, table, expectations(quality, classes), explain, f"{len(table)} images")


def gate_data(ctx: StageContext, table: pd.DataFrame, suite: list[object],
              explain_check: Callable[[CheckResult, pd.DataFrame], str], counted: str) -> None:
    """Run `suite` over `table` as a checkpoint; write GX's result, the Data Docs and the summary metric; fail
    with one line per failed check (`explain_check`) and where the Data Docs are."""
    with atomic_directory(ctx.output("data_docs")) as docs:
        checks, raw = run_checkpoint(table, suite, docs, run_name=ctx.project)
    ctx.output("result").parent.mkdir(parents=True, exist_ok=True)
    ctx.output("result").write_text(json.dumps(raw, indent=2, sort_keys=True, default=str) + "\n")
    failed = [c for c in checks if not c.success]
    write_json(ctx.output("summary"), {"checks": len(checks), "failed": len(failed), "success": not failed})
    if failed:
        lines = "\n".join(f"  - {explain_check(c, table)}" for c in failed)
        raise StageFailure(f"{len(failed)} of {len(checks)} data-quality checks failed:\n{lines}\n"
                           f"  Data Docs: {ctx.output('data_docs_index')}")
    print(f"validate: all {len(checks)} data-quality checks passed ({counted}); "
          f"Data Docs: {ctx.output('data_docs_index')}")


if __name__ == "__main__":
    from core.contracts.classification.validate import CONTRACT

    run_stage(CONTRACT, main)
