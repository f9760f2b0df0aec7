"""The pool is admitted as ingest admits images, and a round's choices follow the spec's strategy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.spec.loop import PoolCaptures, PoolImages
from vision.data.duplicates import fixed_rule
from vision.data.imageio import PixelLimits
from vision.data.sources import RepoFiles, SourceStats, UnsupportedSource
from vision.data.vectors import snap
from vision.loop.choose import Choice, classification_round, detection_round, sure_classifications, sure_detections
from vision.loop.pool import admit, iter_pool, near_duplicates


def save(path: Path, value: int, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def test_pool_admission_quarantines_and_deduplicates(tmp_path: Path) -> None:
    save(tmp_path / "pool/a.png", 10)
    save(tmp_path / "pool/sub/b.png", 10)  # the same pixels as a
    save(tmp_path / "pool/c.png", 200, size=4)  # too small
    save(tmp_path / "pool/d.png", 120)
    (tmp_path / "pool/e.png").write_bytes(b"not a png")
    (tmp_path / "pool/f.txt").write_text("notes")
    stats = SourceStats()
    files = RepoFiles(tmp_path.resolve(), PixelLimits())
    items = iter_pool(PoolImages(kind="images", path="pool"), tmp_path, files, 0.0, stats)
    from vision.data.imageio import canonicalize

    labelled = {canonicalize(Image.open(tmp_path / "pool/d.png")).sha256}
    found = admit(items, (8, 8), labelled)
    assert [i.meta["path"] for i in found.items] == ["pool/a.png"]
    statuses = {Path(r["origin"]).name: (r["status"], r["reason"]) for r in found.rows}
    assert statuses["b.png"][0] == "duplicate"
    assert statuses["c.png"] == ("quarantined", "image is 4x4, smaller than min_size_px 8x8")
    assert statuses["d.png"][0] == "labelled"
    assert statuses["e.png"][0] == "quarantined"
    assert [s.reason for s in stats.skipped] == ["not an image file name ('.txt')"]


def test_captures_need_their_record_and_a_missing_pool_is_a_clear_error(tmp_path: Path) -> None:
    save(tmp_path / "captured/2026/x.png", 5)
    save(tmp_path / "captured/2026/y.png", 6)
    (tmp_path / "captured/2026/x.json").write_text(json.dumps({"reason": "abstained", "ood_score": 3.5,
                                                               "secret": "dropped"}))
    stats = SourceStats()
    files = RepoFiles(tmp_path.resolve(), PixelLimits())
    items = list(iter_pool(PoolCaptures(kind="captures", path="captured"), tmp_path, files, 0.0, stats))
    assert [i.meta for i in items] == [{"path": "captured/2026/x.png",
                                        "capture": {"reason": "abstained", "ood_score": 3.5}}]
    assert [s.reason for s in stats.skipped] == ["capture without its JSON record"]
    with pytest.raises(UnsupportedSource, match="autodl captures fetch"):
        list(iter_pool(PoolCaptures(kind="captures", path="nowhere"), tmp_path, files, 0.0, stats))


def test_near_duplicates_of_the_labelled_set_and_within_the_pool() -> None:
    pool = np.array([[1, 0, 0], [0.999, 0.045, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    labelled = np.array([[0, 0, 1]], np.float32)
    dropped = near_duplicates(snap(pool), snap(labelled), fixed_rule(0.99))
    assert set(dropped) == {1, 3}
    assert dropped[3] == "near-duplicate of a labelled image"


PROBABILITIES = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25], [0.6, 0.3, 0.1], [0.99, 0.005, 0.005],
                          [0.5, 0.49, 0.01]])


def test_a_round_ranks_by_its_strategy_and_auto_labels_only_the_sure_rest() -> None:
    embeddings = np.eye(5, dtype=np.float32)
    features = np.eye(5)
    covered = np.zeros((0, 5), np.float32)
    by_margin = classification_round(Choice("margin", 2, 0), PROBABILITIES, features, embeddings, covered)
    assert by_margin.queue.tolist() == [4, 1]
    by_entropy = classification_round(Choice("entropy", 1, 0), PROBABILITIES, features, embeddings, covered)
    assert by_entropy.queue.tolist() == [1]
    with pytest.raises(ValueError, match="needs its samples"):
        classification_round(Choice("bald", 1, 0), PROBABILITIES, features, embeddings, covered)
    auto = sure_classifications(PROBABILITIES, np.array([False, False, False, True, False]), by_margin.queue,
                                0.95, 10)
    assert auto.tolist() == [0]  # image 3 is surer but the server would abstain on it


def test_detection_round_and_auto_labels() -> None:
    scores = [np.array([0.95, 0.97]), np.array([0.9, 0.3]), np.array([]), np.array([0.55])]
    embeddings = np.eye(4, dtype=np.float32)
    decided = detection_round(Choice("entropy", 2, 0), scores, embeddings, np.zeros((0, 4), np.float32), (0.1, 0.5))
    assert decided.queue.tolist() == [3, 1]
    assert decided.figures["low_confidence_boxes"].tolist() == [0, 1, 0, 0]
    auto = sure_detections(scores, np.zeros(4, bool), np.array([3]), 0.9, (0.1, 0.5), 10)
    assert auto.tolist() == [0]  # image 1 hesitates (0.3), image 2 found nothing


def test_video_frames_in_the_pool_come_back_through_label_studio_as_the_same_pixels(tmp_path: Path) -> None:
    """A video pool yields the sampler's moving frames (static ones dropped); a queued frame's task names the
    video and time, and the labelstudio source re-reads exactly that frame after labelling."""
    import cv2

    from core.spec.data import LabelStudioSource
    from core.spec.loop import PoolVideo
    from vision.data.labelstudio import Guess, prediction, task
    from vision.data.sources import iter_source

    (tmp_path / "drives").mkdir()
    writer = cv2.VideoWriter(str(tmp_path / "drives/a.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    rng = np.random.default_rng(0)
    for index in range(30):
        frame = np.full((64, 96, 3), 40, np.uint8) + rng.integers(0, 3, (64, 96, 3), dtype=np.uint8)
        frame[20:44, min(index, 20) * 3:min(index, 20) * 3 + 24] = 250  # moves for 20 frames, then stands still
        writer.write(frame)
    writer.release()
    stats = SourceStats()
    files = RepoFiles(tmp_path.resolve(), PixelLimits())
    items = list(iter_pool(PoolVideo(kind="video", path="drives", fps=5), tmp_path, files, 0.5, stats))
    assert items
    assert stats.static_frames_dropped > 0
    chosen = items[len(items) // 2]
    assert chosen.meta["video"] == "drives/a.avi"
    export = [{"id": 1, **task("/data/local-files/?d=x.png", {k: v for k, v in chosen.meta.items()},
                               [prediction([Guess("cat", 0.9)], 96, 64, "m")]),
               "annotations": [{"completed_by": 1, "result": [{"type": "choices", "value": {"choices": ["cat"]}}]}]}]
    (tmp_path / "export.json").write_text(json.dumps(export))
    [back] = iter_source(LabelStudioSource(kind="labelstudio", path="export.json"), tmp_path)
    assert back.label == "cat"
    assert np.array_equal(np.asarray(back.read()), np.asarray(chosen.read()))
