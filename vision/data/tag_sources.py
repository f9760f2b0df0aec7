"""Where a tagger's images and their tags come from: every source kind a classifier reads (a manifest's `tags`
column), Label Studio exports of a multiple-choice interface, and the embedded photo mosaics.

Each item's label is its tags joined by `|` (vision.data.tags), the field the multi-label ingest checks; an
image with no tag is a negative, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.spec.data import LabelStudioSource, PhotoMosaicsSource, Source
from vision.data.imageio import PixelLimits, from_array
from vision.data.labelstudio import FROM_NAME, TO_NAME, Guess, LabelKind, Labelled
from vision.data.sources import RawItem, RepoFiles, SourceStats, iter_source, labelstudio_items
from vision.data.tags import TAG_SEPARATOR


class MultipleChoices(LabelKind):
    """Any number of tags per image (multi-label): a `<Choices choice="multiple">` control. An annotation whose
    results choose nothing says the image shows none of the tags: a negative, kept."""

    result_type = "choices"

    def control(self, labels: str) -> str:
        return f'<Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="multiple">{labels}\n  </Choices>'

    def take(self, value: dict[str, Any], found: Labelled) -> str | None:
        choices = value.get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, str) and c for c in choices):
            return f"choices must be a list of tag names, got {choices!r}"
        if any(TAG_SEPARATOR in c for c in choices):
            return f"a tag name may not contain {TAG_SEPARATOR!r}: {choices!r}"
        chosen = set(found.label.split(TAG_SEPARATOR)) if found.label else set()
        found.label = TAG_SEPARATOR.join(sorted(chosen | set(choices)))
        return None

    def results(self, guesses: list[Guess], width: int, height: int) -> list[dict[str, Any]]:
        """One `choices` result holding every guessed tag (how Label Studio stores a multiple-choice answer), its
        score the mean of theirs; no result when the model gives no tag."""
        if not guesses:
            return []
        return [{"id": "p0", "from_name": FROM_NAME, "to_name": TO_NAME, "original_width": width,
                 "original_height": height, "image_rotation": 0, "type": "choices",
                 "score": round(float(sum(g.score for g in guesses) / len(guesses)), 6),
                 "value": {"choices": [g.label for g in guesses]}}]

    def missing(self, found: Labelled) -> str | None:
        """A result that cannot be read may have held a tag: the task is listed as skipped rather than read as
        a negative or with part of its tags."""
        return "some of the annotation's tags cannot be read" if found.problems else None


MULTIPLE_CHOICES = MultipleChoices()


def iter_tagged_source(source: Source, root: Path, stats: SourceStats, limits: PixelLimits, classes: list[str]
                       ) -> Iterator[RawItem]:
    """Tagged items of one source, in a fixed order. The embedded mosaics carry only the spec's `classes`
    (a project may use some of their tags); files on disk carry everything, so stray tags are reported."""
    if isinstance(source, PhotoMosaicsSource):
        yield from _photo_mosaics(source, classes)
    elif isinstance(source, LabelStudioSource):
        files = RepoFiles(root.resolve(), limits)
        for found, origin, read, provenance in labelstudio_items(source, root, files, stats, MULTIPLE_CHOICES):
            yield RawItem(found.label or "", f"labelstudio:{source.path}", origin, read, provenance=provenance)
    else:
        yield from iter_source(source, root, 0.0, stats, None, limits)


def _photo_mosaics(source: PhotoMosaicsSource, classes: list[str]) -> Iterator[RawItem]:
    from vision.data.photo_tags import generate

    mosaics = generate(source.images, source.size_px, source.grid, source.seed, classes)
    for index, (pixels, tags) in enumerate(mosaics):
        yield RawItem(TAG_SEPARATOR.join(tags), "photo_mosaics", f"photo_mosaics#{index}",
                      lambda p=pixels: from_array(p))
