"""Small objects in large images end to end: a tiled detector trained on tiles, evaluated on whole images.

The embedded generator pastes 14-20 px digits on 384 px photographs; the detector's input is 96 px. Letterboxed
whole, a digit shrinks to 4-5 px and is lost; with `detection.tiling` the detector trains on 96 px tiles at
full resolution, and evaluation, dependability and the server cut each image into the same tiles and merge the
detections. The suite runs the real `dvc repro` from synthesis to promotion, shows sliced inference finding the
digits that whole-image inference at the same input misses (on the served file), and asks the real server over
HTTP for the boxes the pipeline's own sliced run gives.
"""

from __future__ import annotations

import base64
import csv
import json
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e import helpers as e2e

pytestmark = pytest.mark.slow

SPEC = """\
name: aerial
task: detection
seed: 3
classes: ["4", "7"]
data:
  synthesize: {kind: digits_on_photos, images: 50, image_size_px: 384, digit_size_px: [14, 20],
               digits_per_image: [2, 6]}
  sources:
    - {kind: coco, annotations: data/aerial/synthesize/annotations.json}
  split: {train: 0.6, val: 0.2, test: 0.2}
  quality: {min_images_per_class: 5}
  boxes: {min_instances_per_class: 5, max_instance_imbalance: 5.0}
  embedding: {input_size_px: 64}
augment: {horizontal_flip: 0.0}
model: {backbone: tf_efficientnet_lite0, pretrained: efficientnet_lite0_imagenet}
detection: {input_size_px: 96, strides: [8, 16, 32], fpn_channels: 32, head_convs: 1,
            tiling: {overlap: 0.25, negatives_per_positive: 0.3}}
train: {epochs: 4, batch_size: 16, optimizer: {lr: 3.0e-3}}
compress: {methods: [quantize], budget: {max_accuracy_drop: 0.05}}
dependability:
  min_map: 0.0
  min_map50: 0.0
  ood: {detector: knn, min_auroc: 0.0, max_accepted_fraction: 1.0}
  robustness: {corruptions: [fog], severities: [2], max_accuracy_drop: 1.0}
  calibration: {max_ece: 1.0}
  explain: {gradcam_samples: 2}
"""
"""Thresholds are open: the suite's claims are that every stage runs tiled and what sliced inference finds."""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return e2e.compile_and_repro(e2e.project_repo(tmp_path_factory.mktemp("e2e-tiled"), {"aerial": SPEC}))


def test_a_tiled_detector_trains_on_tiles_and_is_measured_on_whole_images(pipeline: Path) -> None:
    log = (pipeline / "repro.log").read_text()
    assert e2e.stages_run(log, "aerial") == [
        "synthesize", "ingest", "validate", "embed", "clean", "split", "prune", "train", "evaluate", "compress",
        "export", "dependability", "gate", "promote"]
    trained = json.loads((pipeline / "reports/aerial/train/metrics.json").read_text())
    assert trained["train_tiles"] > trained["train_images"], "each 384 px image gives several 96 px tiles"
    metrics = json.loads((pipeline / "reports/aerial/evaluate/metrics.json").read_text())
    with (pipeline / "data/aerial/prune/split.csv").open() as rows:
        test_images = sum(1 for row in csv.DictReader(rows) if row["split"] == "test")
    assert metrics["test_images"] == test_images, "mAP over whole source images, not tiles"
    assert metrics["map50"] > 0.2, metrics
    preprocess = json.loads((pipeline / "models/aerial/release/preprocess.json").read_text())
    assert preprocess["detection"]["tiling"] == {"tile_wh": [96, 96], "overlap": 0.25, "whole_image": False,
                                                 "merge_threshold": 0.5}
    variants = (pipeline / "reports/aerial/export/variants.csv").read_text().splitlines()
    assert variants[0].endswith(",ms_per_megapixel")
    assert json.loads((pipeline / "reports/aerial/gate/verdict.json").read_text())["passed"] is True


def _served_file_runs(pipeline: Path):
    from runtime.bundle import MODEL_FILE, PREPROCESS_FILE, Preprocessing
    from stages.detection.dependability import decoding_of
    from vision.detection.data import load_detection_split
    from vision.detection.onnx import run_split, session, split_map

    release = pipeline / "models/aerial/release"
    preprocess = Preprocessing.from_dict(json.loads((release / PREPROCESS_FILE).read_text()))
    test = load_detection_split(pipeline / "data/aerial/ingest", pipeline / "data/aerial/ingest/boxes.csv",
                                pipeline / "data/aerial/prune/split.csv", "test", list(preprocess.classes))
    return preprocess, test, session(release / MODEL_FILE), decoding_of(preprocess), run_split, split_map


def test_sliced_inference_finds_the_small_objects_whole_image_inference_misses(pipeline: Path) -> None:
    preprocess, test, sess, decoding, run_split, split_map = _served_file_runs(pipeline)
    sliced = split_map(run_split(sess, test, decoding).found, test, list(preprocess.classes))
    whole = split_map(run_split(sess, test, replace(decoding, tiling=None)).found, test, list(preprocess.classes))
    assert sliced["map50"] > 0.2, sliced
    assert sliced["map50"] >= 3 * whole["map50"], (sliced, whole)


def test_the_server_answers_the_boxes_of_the_pipeline_s_sliced_run(pipeline: Path, tmp_path: Path) -> None:
    from runtime.artifact import calibrated

    _, test, sess, decoding, run_split, _ = _served_file_runs(pipeline)
    temperature = json.loads((pipeline / "models/aerial/release/serving.json").read_text())["temperature"]
    chosen = test.take(range(3))
    expected = run_split(sess, chosen, decoding).found
    images = [(chosen.root / p).read_bytes() for p in chosen.paths]
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)],
                        "data": [base64.b64encode(i).decode() for i in images]}],
            "parameters": {"score_threshold": 0.0}}
    answered = 0
    with e2e.autodl_serve(pipeline, "specs/aerial.yaml", tmp_path / "serve.log") as base:
        response = httpx.post(f"{base}/v2/models/aerial/infer", json=body, timeout=120)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    counts = outputs["detections_per_image"]["data"]
    boxes = np.asarray(outputs["boxes"]["data"], np.float32).reshape(-1, 4)
    scores = np.asarray(outputs["scores"]["data"], np.float32)
    start = 0
    for index, count in enumerate(counts):
        if outputs["abstained"]["data"][index]:
            assert count == 0
            continue
        answered += 1
        ours = expected[index]
        assert count == len(ours), (index, count, len(ours))
        np.testing.assert_allclose(boxes[start:start + count], ours.boxes, atol=1e-3)
        np.testing.assert_allclose(scores[start:start + count], calibrated(ours.scores, temperature), atol=1e-5)
        start += count
    assert answered, "the server abstained on every test image"
