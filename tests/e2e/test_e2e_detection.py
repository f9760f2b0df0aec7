"""End to end for detection with the real tools: a tiny detection spec through `dvc repro` (its own data set
built by the synthesize stage, then ingest to evaluate), and each detection key's edit invalidating exactly the
stages that read it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from core.registry import DETECTION_STAGES
from tests.conftest import copy_project_code, git
from tests.e2e.helpers import autodl, changed_stages, dvc

pytestmark = pytest.mark.slow

SPEC = """\
name: boxes
task: detection
seed: 1
classes: ["0", "1", "2"]
data:
  synthesize: {kind: digits_on_photos, images: 90, image_size_px: 96, digit_size_px: [20, 40], digits_per_image: [1, 3]}
  sources:
    - {kind: coco, annotations: data/boxes/synthesize/annotations.json}
  split: {train: 0.6, val: 0.2, test: 0.2}
  quality: {min_images_per_class: 5}
  boxes: {min_instances_per_class: 5, max_instance_imbalance: 5.0}
  embedding: {input_size_px: 64}
augment: {horizontal_flip: 0.0, fog: 0.2}
model: {backbone: tf_efficientnet_lite0, pretrained: efficientnet_lite0_imagenet}
detection: {input_size_px: 96, strides: [8, 16, 32], fpn_channels: 32, head_convs: 1}
train: {epochs: 3, batch_size: 8, optimizer: {lr: 2.0e-3},
        hpo: {trials: 2, sampler: random, epochs_per_trial: 1, space: {lr: {low: 1.0e-3, high: 4.0e-3, log: true}}}}
"""

# (spec edit as `old -> new` text, stages whose params it changes), written out by hand on purpose.
EDITS: dict[str, tuple[tuple[str, str], set[str]]] = {
    "data.synthesize": (("images: 90", "images: 91"), {"synthesize"}),
    "data.sources": (("{kind: coco, annotations", "{kind: coco, group_by: folder, annotations"), {"ingest"}),
    "data.boxes.clip_tolerance_px": (("boxes: {", "boxes: {clip_tolerance_px: 3.0, "), {"ingest"}),
    "data.boxes.min_side_px": (("boxes: {", "boxes: {min_side_px: 2.0, "), {"ingest"}),
    "data.boxes.duplicate_iou": (("boxes: {", "boxes: {duplicate_iou: 0.9, "), {"ingest"}),
    "data.boxes.min_instances_per_class": (("min_instances_per_class: 5", "min_instances_per_class: 4"),
                                           {"validate", "prune"}),
    "data.boxes.max_instance_imbalance": (("max_instance_imbalance: 5.0", "max_instance_imbalance: 6.0"),
                                          {"validate"}),
    "data.boxes.max_boxes_per_image": (("boxes: {", "boxes: {max_boxes_per_image: 50, "), {"validate"}),
    "data.boxes.area_fraction": (("boxes: {", "boxes: {area_fraction: [0.001, 0.9], "), {"validate"}),
    "data.boxes.max_aspect_ratio": (("boxes: {", "boxes: {max_aspect_ratio: 10.0, "), {"validate"}),
    "data.boxes.max_quarantined_fraction": (("boxes: {", "boxes: {max_quarantined_fraction: 0.1, "), {"validate"}),
    "data.quality.min_images_per_class": (("min_images_per_class: 5", "min_images_per_class: 4"), {"validate"}),
    "data.quality.max_corrupt_fraction": (("quality: {", "quality: {max_corrupt_fraction: 0.1, "), {"validate"}),
    "data.quality.min_size_px": (("quality: {", "quality: {min_size_px: [16, 16], "), {"ingest"}),
    "data.quality.max_image_pixels": (("quality: {", "quality: {max_image_pixels: 90000, "), {"ingest"}),
    "data.cleaning.static_frame_flow_px": (("  quality:", "  cleaning: {static_frame_flow_px: 1.0}\n  quality:"),
                                           set()),
    "data.split": (("val: 0.2, test: 0.2", "val: 0.25, test: 0.15"), {"split"}),
    "data.pruning": (("  quality:", "  pruning: {budget: 0.9}\n  quality:"), {"prune"}),
    "data.embedding": (("input_size_px: 64}", "input_size_px: 48}"), {"embed"}),
    "data.cleaning.near_duplicate_cosine": (("  quality:", "  cleaning: {near_duplicate_cosine: 0.99}\n  quality:"),
                                            {"clean", "split"}),
    "data.cleaning.remove_flagged": (("  quality:", "  cleaning: {remove_flagged: [dark]}\n  quality:"), {"clean"}),
    "classes": (('["0", "1", "2"]', '["0", "1", "2", "3"]'), {"synthesize", "ingest", "validate", "train",
                                                               "evaluate"}),
    "seed": (("seed: 1", "seed: 2"), {"synthesize", "split", "prune", "train"}),
    "augment": (("fog: 0.2", "fog: 0.3"), {"train"}),
    "model.backbone": (("model: {backbone: tf_efficientnet_lite0, pretrained: efficientnet_lite0_imagenet}",
                        "model: {backbone: resnet10t}"), {"train"}),
    "model.pretrained": (("pretrained: efficientnet_lite0_imagenet", "pretrained: null"), {"train"}),
    "train": (("epochs: 3", "epochs: 4"), {"train"}),
    "detection.input_size_px": (("input_size_px: 96, strides", "input_size_px: 128, strides"), {"train"}),
    "detection.strides": (("strides: [8, 16, 32]", "strides: [8, 16]"), {"train"}),
    "detection.fpn_channels": (("fpn_channels: 32", "fpn_channels: 64"), {"train"}),
    "detection.head_convs": (("head_convs: 1", "head_convs: 2"), {"train"}),
    "detection.center_sampling_radius": (("head_convs: 1", "head_convs: 1, center_sampling_radius: 2.0"), {"train"}),
    "detection.score_threshold": (("head_convs: 1", "head_convs: 1, score_threshold: 0.1"), {"train"}),
    "detection.nms_iou": (("head_convs: 1", "head_convs: 1, nms_iou: 0.5"), {"train"}),
    "detection.max_detections": (("head_convs: 1", "head_convs: 1, max_detections: 50"), {"train"}),
    "detection.min_visibility": (("head_convs: 1", "head_convs: 1, min_visibility: 0.5"), {"train"}),
    "detection.confidence_threshold": (("head_convs: 1", "head_convs: 1, confidence_threshold: 0.4"), {"evaluate"}),
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh repository after `autodl compile` and a full `dvc repro` of the detection spec, committed."""
    repo = tmp_path_factory.mktemp("e2e-detection")
    copy_project_code(repo)
    (repo / "specs").mkdir()
    (repo / "specs" / "boxes.yaml").write_text(SPEC)
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    autodl(repo, "compile")
    repro = dvc(repo, "repro")
    (repo / "repro.log").write_text(repro.stdout + repro.stderr)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first run")
    return repo


def test_repro_builds_the_data_trains_a_detector_and_reports_map(pipeline: Path) -> None:
    log = (pipeline / "repro.log").read_text()
    ran = re.findall(r"Running stage 'boxes-(\w+)'", log)
    assert ran == ["synthesize", "ingest", "validate", "embed", "clean", "split", "prune", "train", "evaluate"]
    ingest = json.loads((pipeline / "reports/boxes/ingest/summary.json").read_text())
    assert ingest["images"] == 90
    assert ingest["quarantined_boxes"] == 0
    assert set(ingest["instances_per_class"]) == {"0", "1", "2"}
    assert "hyperparameter search ran 2 new trial(s)" in log
    trained = json.loads((pipeline / "reports/boxes/train/metrics.json").read_text())
    assert trained["hpo"]["trials"] == 2
    assert trained["selected_by"] == "val_map"
    metrics = json.loads((pipeline / "reports/boxes/evaluate/metrics.json").read_text())
    assert {"map", "map50", "map75", "map_small", "map_medium", "map_large", "ar100", "per_class_ap"} <= set(metrics)
    assert 0.0 <= metrics["map"] <= metrics["map50"] <= 1.0
    assert metrics["map50"] > 0.05, "three epochs from ImageNet weights find some digits"
    shown = dvc(pipeline, "metrics", "show", "--json").stdout
    assert "map50" in shown
    rows = (pipeline / "reports/boxes/evaluate/precision_recall.csv").read_text().splitlines()
    assert rows[0] == "recall,precision_0,precision_1,precision_2"
    assert len(rows) == 102
    confusion = (pipeline / "reports/boxes/evaluate/confusion.csv").read_text()
    assert confusion.startswith("actual,predicted")
    for figure in ("reports/boxes/train/augmentations.png", "reports/boxes/evaluate/worst.png",
                   "reports/boxes/prune/projection.png", "reports/boxes/validate/data_docs/index.html"):
        assert (pipeline / figure).stat().st_size > 1000, figure


def test_training_again_gives_the_same_detector_and_reports_byte_for_byte(pipeline: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(pipeline, clone, symlinks=True)
    dvc(clone, "repro", "--force", "--single-item", "boxes-train")
    assert git(clone, "status", "--porcelain") == "", "a forced rerun of train changed its outputs"


def test_pipeline_is_up_to_date_after_repro(pipeline: Path) -> None:
    assert changed_stages(pipeline, "boxes") == set()


def test_edit_table_covers_every_declared_param() -> None:
    declared = {key for stage in DETECTION_STAGES for key in stage.params}
    missing = {d for d in declared if not any(k == d or k.startswith(d + ".") for k in EDITS)}
    assert not missing, f"add an edit to EDITS for {sorted(missing)}"


@pytest.mark.parametrize("key", sorted(EDITS))
def test_spec_edit_invalidates_exactly_the_stages_that_read_it(pipeline: Path, key: str) -> None:
    (old, new), expected = EDITS[key]
    assert old in SPEC, old
    (pipeline / "specs" / "boxes.yaml").write_text(SPEC.replace(old, new, 1))
    autodl(pipeline, "compile")
    try:
        assert changed_stages(pipeline, "boxes") == expected
    finally:
        git(pipeline, "checkout", "-q", "--", "specs", "params.yaml", "dvc.yaml")
