"""A multi-label project's tags: one row per (image, tag) in `tags.csv` beside the manifest, read into the
multi-hot rows (N x tags, float) the tagger's loss and metrics take (vision.data.dataset.load_tagged_split).
Torch-free: sources read tags too.

Tags arrive in one text field per image (a manifest's `tags` column, a Label Studio choice list) separated by
TAG_SEPARATOR; an image may carry none (a negative, which teaches every tag what it is not).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

TAG_FIELDS = ("path", "tag")
TAG_SEPARATOR = "|"


def parse_tags(text: str) -> list[str]:
    """The distinct tags of one field, in sorted order (`night| rain|night` -> [night, rain])."""
    return sorted({part.strip() for part in text.split(TAG_SEPARATOR) if part.strip()})


def tag_rows(tags_of: dict[str, Sequence[str]]) -> list[dict[str, str]]:
    """`tags.csv`'s rows: image path -> its tags, in path then tag order."""
    return [{"path": path, "tag": tag} for path in sorted(tags_of) for tag in sorted(set(tags_of[path]))]


def multi_hot(paths: Sequence[str], rows: Iterable[dict[str, str]], classes: list[str]) -> np.ndarray:
    """N x len(classes) float32: 1 where the image at that position carries the tag. Rows of other images are
    ignored; a tag outside `classes` is an error (ingest quarantines such images)."""
    position = {path: i for i, path in enumerate(paths)}
    index = {name: i for i, name in enumerate(classes)}
    targets = np.zeros((len(paths), len(classes)), dtype=np.float32)
    for row in rows:
        if row["path"] in position:
            if row["tag"] not in index:
                raise ValueError(f"{row['path']}: tag '{row['tag']}' is not among the classes {classes}")
            targets[position[row["path"]], index[row["tag"]]] = 1.0
    return targets

