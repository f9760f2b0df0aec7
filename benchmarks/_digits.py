"""Shared set-up for the benchmarks: the default digits spec's data, prepared once by the real stage cores."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from compiler.load import load_spec  # noqa: E402
from core.spec import ProjectSpec  # noqa: E402


@dataclass(frozen=True)
class Prepared:
    spec: ProjectSpec
    records: list
    """Ingested, cleaned records (path, label, group...)."""
    vectors: np.ndarray
    """Their embeddings, row for row."""
    split: list[str]
    """train / val / test per record."""
    split_csv: Path
    """The same split as the file the training stages read."""


def prepare(work: Path, spec_path: Path = REPO / "specs" / "digits.yaml") -> Prepared:
    """ingest -> embed -> clean -> split with the spec's settings, into `work`."""
    from stages.clean import sort_duplicates
    from stages.ingest import ingest
    from stages.split import assign_splits
    from vision.data.duplicates import calibration_sample, choose_rule
    from vision.data.embedding import altered_copies, embed_images, embedding_model
    from vision.data.sources import iter_source
    from vision.data.vectors import row_similarity
    from vision.training.pretrained import WEIGHTS

    spec = load_spec(spec_path, REPO).spec
    items = (i for s in spec.data.sources for i in iter_source(s, REPO, classes=spec.classes))
    records = ingest(items, spec.classes, tuple(spec.data.quality.min_size_px), work).records
    size = spec.data.embedding.input_size_px or WEIGHTS[spec.data.embedding.embedder].input_size_px
    model = embedding_model(spec.data.embedding.embedder)
    vectors = embed_images([work / r.path for r in records], model, size)
    sample = calibration_sample([r.sha256 for r in records])
    copies = {name: row_similarity(vectors[sample], altered) for name, altered
              in altered_copies([work / records[i].path for i in sample], model, size).items()}
    _, _, pairs = choose_rule(spec.data.cleaning.near_duplicate_cosine, copies, vectors, [r.sha256 for r in records])
    keep = sort_duplicates([{"path": r.path, "label": r.label} for r in records], pairs).keep
    records = [r for r, k in zip(records, keep, strict=True) if k]
    vectors = vectors[np.array(keep)]
    split = assign_splits([r.label for r in records], spec.data.split, spec.seed, [r.group for r in records])
    rows = ["path,label,split"] + [f"{r.path},{r.label},{s}" for r, s in zip(records, split, strict=True)]
    (work / "split.csv").write_text("\n".join(rows) + "\n")
    return Prepared(spec, records, vectors, list(split), work / "split.csv")
