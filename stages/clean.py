"""clean: drop near-duplicate images (embedding cosine >= threshold) and flag dark, blurry or empty ones.

Near-duplicates are found with faiss over the cached embeddings; of each group
the first image in manifest order is kept. Pairs whose labels disagree are
reported apart: they are labelling errors, not just redundancy. Image issues
come from cleanvision and are only reported unless `data.cleaning.remove_flagged`
names them. Removing near-duplicates before the split is what keeps the test
set free of near-copies of training images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.fsutil import atomic_directory, read_csv, write_csv, write_json
from core.spec.data import Cleaning
from stages.runtime import StageContext, StageFailure, run_stage
from vision.data.embedding import load_embeddings
from vision.data.neighbours import pairs_above

FLAGS = ("dark", "blurry", "low_information")


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
    near_duplicates: list[NearDuplicate] = field(default_factory=list)
    flagged: dict[str, list[str]] = field(default_factory=dict)
    removed_flagged: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "images_in": len(self.keep),
            "near_duplicates_removed": len(self.near_duplicates),
            "near_duplicates_with_other_label": sum(d.kept_label != d.dropped_label for d in self.near_duplicates),
            "flagged": {name: len(self.flagged.get(name, [])) for name in FLAGS},
            "flagged_removed": len(self.removed_flagged),
            "images_out": int(sum(self.keep)),
        }


def find_near_duplicates(vectors: np.ndarray, paths: list[str], labels: list[str], threshold: float
                         ) -> tuple[list[bool], list[NearDuplicate]]:
    """Keep the first image of every group of near-duplicates, in input order."""
    keep = [True] * len(paths)
    found = []
    for i, j, cosine in pairs_above(vectors, threshold):  # sorted by (i, j): earlier images decide first
        if keep[i] and keep[j]:
            keep[j] = False
            found.append(NearDuplicate(paths[i], paths[j], round(cosine, 6), labels[i], labels[j]))
    return keep, found


def image_flags(files: list[Path]) -> dict[str, list[int]]:
    """Row indices cleanvision flags for each issue type."""
    if not files:
        return {name: [] for name in FLAGS}
    from cleanvision import Imagelab

    lab = Imagelab(filepaths=[str(f) for f in files])
    lab.find_issues({name: {} for name in FLAGS}, n_jobs=1, verbose=False)
    issues = lab.issues.reindex([str(f) for f in files])
    return {name: [i for i, flagged in enumerate(issues[f"is_{name}_issue"].tolist()) if flagged] for name in FLAGS}


def clean(rows: list[dict[str, str]], vectors: np.ndarray, ingest_dir: Path, cleaning: Cleaning) -> CleanResult:
    paths, labels = [r["path"] for r in rows], [r["label"] for r in rows]
    keep, duplicates = find_near_duplicates(vectors, paths, labels, cleaning.near_duplicate_cosine)
    flags = image_flags([ingest_dir / p for p in paths])
    result = CleanResult(keep, duplicates, {name: [paths[i] for i in idx] for name, idx in flags.items()})
    for name in cleaning.remove_flagged:
        for i in flags[name]:
            if keep[i]:
                keep[i] = False
                result.removed_flagged.append(paths[i])
    return result


def main(ctx: StageContext) -> None:
    cleaning: Cleaning = ctx.spec("data.cleaning")
    ingest_dir, embed_dir = ctx.input("images"), ctx.input("embeddings")
    rows = read_csv(ctx.input("manifest"))
    vectors, embedded_paths = load_embeddings(embed_dir)
    if embedded_paths != [r["path"] for r in rows]:
        raise StageFailure("embeddings are out of step with the manifest; run `dvc repro` for the embed stage")
    result = clean(rows, vectors, ingest_dir, cleaning)
    with atomic_directory(ctx.output("cleaned")) as out:
        write_csv(out / ctx.inside("manifest"), [row for row, kept in zip(rows, result.keep, strict=True) if kept],
                  tuple(rows[0]) if rows else None)
    write_json(ctx.output("report"), {"near_duplicates": [asdict(d) for d in result.near_duplicates],
                                               "flagged": result.flagged, "removed_flagged": result.removed_flagged})
    summary = result.summary()
    write_json(ctx.output("summary"), summary)
    print(f"clean: {summary['images_out']} of {summary['images_in']} images kept; "
          f"{summary['near_duplicates_removed']} near-duplicates removed "
          f"({summary['near_duplicates_with_other_label']} with a different label); flagged {summary['flagged']}")


if __name__ == "__main__":
    run_stage("clean", main)
