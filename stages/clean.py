"""clean: drop near-duplicate images and flag dark, blurry or empty ones, within a loss budget.

What counts as a near-duplicate is calibrated on the project's own images by default
(`data.cleaning.near_duplicate_cosine: auto`, vision.data.duplicates); a number still works. Of each group of
duplicates with one label the first image in manifest order is kept. A pair whose labels disagree is possible
label noise: both images stay, in one split group (so no copy lands on the other side of the split), and the pair
is reported, never resolved silently. Image issues come from cleanvision and are only reported unless
`data.cleaning.remove_flagged` names them.

A default must never silently throw a data set away: when duplicates and removed flags exceed
`data.quality.max_removed_fraction`, or images in conflicting pairs exceed
`data.quality.max_conflicting_duplicates`, the stage stops with the figures, a picture of example pairs
(`reports/<p>/clean/breach.png`) and the keys to change, and writes none of its outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.fsutil import atomic_directory, read_csv, read_json, write_csv, write_json
from core.spec.data import Cleaning, Quality
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.duplicate_reports import pairs_picture, similarity_curves, similarity_histogram
from vision.data.duplicates import DuplicateRule, choose_rule
from vision.data.vectors import load_embeddings

FLAGS = ("dark", "blurry", "low_information")
EXAMPLE_PAIRS = 10


@dataclass(frozen=True)
class NearDuplicate:
    kept: str
    dropped: str
    cosine: float
    kept_label: str
    dropped_label: str


@dataclass
class CleanResult:
    keep: list[bool]
    groups: list[str]
    near_duplicates: list[NearDuplicate] = field(default_factory=list)
    """Pairs with one label: the second image was removed."""
    conflicts: list[NearDuplicate] = field(default_factory=list)
    """Pairs whose labels differ: both kept, in one split group, reported as possible label noise."""
    flagged: dict[str, list[str]] = field(default_factory=dict)
    removed_flagged: list[str] = field(default_factory=list)

    @property
    def conflicting_images(self) -> int:
        return len({p for d in self.conflicts for p in (d.kept, d.dropped)})

    def summary(self) -> dict[str, object]:
        images_in, images_out = len(self.keep), int(sum(self.keep))
        return {
            "images_in": images_in,
            "near_duplicates_removed": len(self.near_duplicates),
            "conflicting_pairs": len(self.conflicts),
            "conflicting_images": self.conflicting_images,
            "flagged": {name: len(self.flagged.get(name, [])) for name in FLAGS},
            "flagged_removed": len(self.removed_flagged),
            "images_out": images_out,
            "removed_fraction": round((images_in - images_out) / images_in, 6) if images_in else 0.0,
        }


def _root(parent: dict[str, str], group: str) -> str:
    while parent.get(group, group) != group:
        group = parent[group]
    return group


def merged_groups(groups: list[str], pairs: list[tuple[int, int]]) -> list[str]:
    """Each row's group after joining the groups of every pair (the smallest name of a joined set wins)."""
    parent: dict[str, str] = {}
    for i, j in pairs:
        a, b = _root(parent, groups[i]), _root(parent, groups[j])
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [_root(parent, g) for g in groups]


def sort_duplicates(rows: list[dict[str, str]], pairs: list[tuple[int, int, float]]) -> CleanResult:
    """Remove the later image of each same-label pair (manifest order); keep conflicting pairs together."""
    keep = [True] * len(rows)
    result = CleanResult(keep, [r.get("group") or r["path"] for r in rows])
    joined = []
    for i, j, similarity in pairs:  # sorted by (i, j): earlier images decide first
        pair = NearDuplicate(rows[i]["path"], rows[j]["path"], round(similarity, 6), rows[i]["label"],
                             rows[j]["label"])
        if pair.kept_label != pair.dropped_label:
            result.conflicts.append(pair)
            joined.append((i, j))
        elif keep[i] and keep[j]:
            keep[j] = False
            result.near_duplicates.append(pair)
    result.groups = merged_groups(result.groups, joined)
    return result


def image_flags(files: list[Path]) -> dict[str, list[int]]:
    """Row indices cleanvision flags for each issue type."""
    if not files:
        return {name: [] for name in FLAGS}
    from cleanvision import Imagelab

    lab = Imagelab(filepaths=[str(f) for f in files])
    lab.find_issues({name: {} for name in FLAGS}, n_jobs=1, verbose=False)
    issues = lab.issues.reindex([str(f) for f in files])
    return {name: [i for i, flagged in enumerate(issues[f"is_{name}_issue"].tolist()) if flagged] for name in FLAGS}


def clean(rows: list[dict[str, str]], pairs: list[tuple[int, int, float]], flags: dict[str, list[int]],
          cleaning: Cleaning) -> CleanResult:
    """The pure decision: which rows stay, given the duplicate pairs and cleanvision's flags."""
    result = sort_duplicates(rows, pairs)
    result.flagged = {name: [rows[i]["path"] for i in idx] for name, idx in flags.items()}
    for name in cleaning.remove_flagged:
        for i in flags[name]:
            if result.keep[i]:
                result.keep[i] = False
                result.removed_flagged.append(rows[i]["path"])
    return result


def breaches(result: CleanResult, quality: Quality, rule: DuplicateRule) -> list[str]:
    """One line per loss budget the result exceeds, with the figures and the keys to change."""
    summary, problems = result.summary(), []
    threshold = "identical embeddings" if rule.threshold is None else f"similarity >= {rule.threshold:.4f}"
    if summary["removed_fraction"] > quality.max_removed_fraction:
        problems.append(
            f"clean would remove {summary['images_in'] - summary['images_out']} of {summary['images_in']} images "
            f"({summary['removed_fraction']:.1%}; budget data.quality.max_removed_fraction "
            f"{quality.max_removed_fraction:.1%}): {summary['near_duplicates_removed']} near-duplicates at "
            f"{threshold} ({rule.mode}: {rule.reason}) and {summary['flagged_removed']} flagged images. Check the "
            "example pairs; if they are not copies, raise data.cleaning.near_duplicate_cosine (or set it to auto), "
            "or empty data.cleaning.remove_flagged; if they are, raise data.quality.max_removed_fraction")
    share = summary["conflicting_images"] / summary["images_in"] if summary["images_in"] else 0.0
    if share > quality.max_conflicting_duplicates:
        problems.append(
            f"{summary['conflicting_pairs']} near-duplicate pairs have different labels "
            f"({summary['conflicting_images']} images, {share:.1%}; budget data.quality.max_conflicting_duplicates "
            f"{quality.max_conflicting_duplicates:.1%}) at {threshold}: either the threshold calls distinct images "
            "duplicates (raise data.cleaning.near_duplicate_cosine or set it to auto) or the labels are noisy "
            "(fix them; report.json lists every pair)")
    return problems


def example_pairs(result: CleanResult, limit: int = EXAMPLE_PAIRS) -> list[NearDuplicate]:
    """The pairs a person should look at first: conflicting ones, then removed ones, most similar first."""
    def most_similar(pairs: list[NearDuplicate]) -> list[NearDuplicate]:
        return sorted(pairs, key=lambda d: (-d.cosine, d.kept, d.dropped))

    return (most_similar(result.conflicts) + most_similar(result.near_duplicates))[:limit]


def main(ctx: StageContext) -> None:
    cleaning: Cleaning = ctx.spec("data.cleaning")
    quality: Quality = ctx.spec("data.quality")
    ingest_dir, embed_dir = ctx.input("images"), ctx.input("embeddings")
    rows = read_csv(ctx.input("manifest"))
    vectors, embedded_paths = load_embeddings(embed_dir)
    if embedded_paths != [r["path"] for r in rows]:
        raise StageFailure("embeddings are out of step with the manifest; run `dvc repro` for the embed stage")
    copies = {name: np.array(values) for name, values in read_json(embed_dir / "copies.json")["similarity"].items()}
    rule, calibration, pairs = choose_rule(cleaning.near_duplicate_cosine, copies, vectors, [r["sha256"] for r in rows])
    result = clean(rows, pairs, image_flags([ingest_dir / r["path"] for r in rows]), cleaning)
    breach = ctx.output("report").parent / "breach.png"
    problems = breaches(result, quality, rule)
    if problems:
        pairs_picture([(d.kept, d.dropped, d.cosine, d.kept_label, d.dropped_label) for d in example_pairs(result)],
                      ingest_dir, breach, f"{ctx.project}: example near-duplicate pairs at {rule.mode} threshold")
        raise StageFailure("data loss budget exceeded, nothing written:\n" + "\n".join(f"  - {p}" for p in problems)
                           + f"\n  Example pairs: {breach}")
    breach.unlink(missing_ok=True)
    with atomic_directory(ctx.output("cleaned")) as out:
        kept = [{**row, **({"group": group} if "group" in row else {})}
                for row, group, k in zip(rows, result.groups, result.keep, strict=True) if k]
        write_csv(out / ctx.inside("manifest"), kept, tuple(rows[0]) if rows else None)
        write_json(out / ctx.inside("rule"), rule.decision())
    similarity_curves(calibration, rule, ctx.output("similarity"))
    similarity_histogram(calibration, rule, ctx.output("similarity_png"), f"{ctx.project}: what a duplicate is here")
    write_json(ctx.output("report"), {
        "rule": rule.as_dict(), "separable": calibration.separable,
        "near_duplicates": [asdict(d) for d in result.near_duplicates],
        "conflicting_pairs": [asdict(d) for d in result.conflicts],
        "flagged": result.flagged, "removed_flagged": result.removed_flagged})
    summary = {**result.summary(), "threshold": rule.threshold, "threshold_mode": rule.mode}
    write_json(ctx.output("summary"), summary)
    print(f"clean: {summary['images_out']} of {summary['images_in']} images kept; "
          f"{summary['near_duplicates_removed']} near-duplicates removed, {summary['conflicting_pairs']} pairs with "
          f"different labels kept for review; flagged {summary['flagged']}\n  duplicates: {rule.reason}")


if __name__ == "__main__":
    from core.contracts.shared.clean import CONTRACT

    run_stage(CONTRACT, main)
