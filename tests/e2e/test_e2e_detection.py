"""End to end for detection with the real tools: a tiny detection spec through the whole `dvc repro` (its own
data set built by the synthesize stage, then ingest to promote), the promoted detector answering a real HTTP
request from `autodl serve`, a missed threshold leaving k8s/ untouched, and each detection key's edit
invalidating exactly the stages that read it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image
from ruamel.yaml import YAML
from skimage import data as skimage_data

from core.registry import DETECTION_STAGES
from tests.browser import assert_project_reports_render_offline
from tests.conftest import git
from tests.e2e.helpers import (
    autodl,
    autodl_serve,
    changed_stages,
    compile_and_repro,
    dvc,
    pool_clone,
    project_repo,
    run,
    stages_run,
)

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
compress: {methods: [structured_prune, distill, quantize], prune_steps: 1, max_prune_ratio: 0.3, finetune_epochs: 1,
           budget: {max_accuracy_drop: 0.02}}
dependability:
  min_map: 0.005
  min_map50: 0.01
  ood: {detector: knn, min_auroc: 0.0, max_accepted_fraction: 1.0}
  robustness: {corruptions: [fog, gaussian_noise], severities: [2], max_accuracy_drop: 0.5}
  calibration: {max_ece: 0.5}
  explain: {gradcam_samples: 4}
"""
# Thresholds a three-epoch detector of 54 training images meets: the test is that every stage runs on it, passes
# a gate, is promoted and served, and that a threshold it misses stops it (test_a_failing_detection_threshold...).

# (spec edit as `old -> new` text, stages whose params it changes), written out by hand on purpose.
EDITS: dict[str, tuple[tuple[str, str], set[str]]] = {
    "data.synthesize": (("images: 90", "images: 91"), {"synthesize", "dependability"}),
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
                                            {"clean"}),
    "data.quality.max_removed_fraction": (("quality: {", "quality: {max_removed_fraction: 0.2, "),
                                          {"clean"}),
    "data.quality.max_conflicting_duplicates": (("quality: {", "quality: {max_conflicting_duplicates: 0.2, "),
                                                {"clean"}),
    "data.cleaning.remove_flagged": (("  quality:", "  cleaning: {remove_flagged: [dark]}\n  quality:"), {"clean"}),
    "classes": (('["0", "1", "2"]', '["0", "1", "2", "3"]'), {"synthesize", "ingest", "validate", "train",
                                                               "evaluate", "compress"}),
    "seed": (("seed: 1", "seed: 2"), {"synthesize", "split", "prune", "train", "compress", "dependability"}),
    "augment": (("fog: 0.2", "fog: 0.3"), {"train", "compress", "dependability"}),
    "model.backbone": (("model: {backbone: tf_efficientnet_lite0, pretrained: efficientnet_lite0_imagenet}",
                        "model: {backbone: resnet10t}"), {"train"}),
    "model.pretrained": (("pretrained: efficientnet_lite0_imagenet", "pretrained: null"), {"train"}),
    "train.epochs": (("epochs: 3", "epochs: 4"), {"train", "compress"}),
    "train.batch_size": (("batch_size: 8", "batch_size: 4"), {"train", "compress"}),
    "train.optimizer": (("lr: 2.0e-3", "lr: 3.0e-3"), {"train", "compress"}),
    "train.scheduler.name": (("batch_size: 8", "batch_size: 8, scheduler: {name: step}"), {"train", "compress"}),
    "train.select_by": (("batch_size: 8", "batch_size: 8, select_by: val_loss"), {"train", "compress"}),
    "train.hpo.trials": (("trials: 2", "trials: 3"), {"train"}),
    "detection.input_size_px": (("input_size_px: 96, strides", "input_size_px: 128, strides"), {"train"}),
    "detection.strides": (("strides: [8, 16, 32]", "strides: [8, 16]"), {"train"}),
    "detection.fpn_channels": (("fpn_channels: 32", "fpn_channels: 64"), {"train"}),
    "detection.head_convs": (("head_convs: 1", "head_convs: 2"), {"train"}),
    "detection.center_sampling_radius": (("head_convs: 1", "head_convs: 1, center_sampling_radius: 2.0"), {"train"}),
    "detection.score_threshold": (("head_convs: 1", "head_convs: 1, score_threshold: 0.1"), {"train"}),
    "detection.nms_iou": (("head_convs: 1", "head_convs: 1, nms_iou: 0.5"), {"train"}),
    "detection.max_detections": (("head_convs: 1", "head_convs: 1, max_detections: 50"), {"train"}),
    "detection.min_visibility": (("head_convs: 1", "head_convs: 1, min_visibility: 0.5"), {"train", "compress"}),
    "detection.tiling": (("head_convs: 1", "head_convs: 1, tiling: {overlap: 0.25}"), {"train", "compress"}),
    "detection.confidence_threshold": (("head_convs: 1", "head_convs: 1, confidence_threshold: 0.4"),
                                       {"evaluate", "compress", "export"}),
    "compress.budget": (("max_accuracy_drop: 0.02}", "max_accuracy_drop: 0.03}"), {"compress", "export", "gate"}),
    "compress.methods": (("methods: [structured_prune, distill, quantize]", "methods: [structured_prune, quantize]"),
                         {"compress", "export"}),
    "compress.importance": (("prune_steps: 1,", "prune_steps: 1, importance: lamp,"), {"compress"}),
    "compress.prune_steps": (("prune_steps: 1,", "prune_steps: 2,"), {"compress"}),
    "compress.max_prune_ratio": (("max_prune_ratio: 0.3", "max_prune_ratio: 0.4"), {"compress"}),
    "compress.finetune_epochs": (("finetune_epochs: 1", "finetune_epochs: 2"), {"compress"}),
    "compress.finetune_min_steps": (("finetune_epochs: 1", "finetune_epochs: 1, finetune_min_steps: 20"),
                                    {"compress"}),
    "compress.distillation": (("finetune_epochs: 1", "finetune_epochs: 1, distillation: {alpha: 0.5}"),
                              {"compress"}),
    "compress.allocation": (("finetune_epochs: 1", "finetune_epochs: 1, allocation: global"), {"compress"}),
    "compress.student": (("finetune_epochs: 1", "finetune_epochs: 1, student: resnet10t"), {"compress"}),
    "compress.student_head": (("finetune_epochs: 1", "finetune_epochs: 1, student_head: {fpn_channels: 64}"),
                              {"compress"}),
    "compress.calibration_images": (("finetune_epochs: 1", "finetune_epochs: 1, calibration_images: 150"),
                                    {"export"}),
    "target": (("compress: {", "target: {hardware: nvidia-t4}\ncompress: {"), {"export"}),
    "dependability.min_map": (("min_map: 0.005", "min_map: 0.006"), {"gate"}),
    "dependability.min_map50": (("min_map50: 0.01", "min_map50: 0.02"), {"gate"}),
    "dependability.ood.min_auroc": (("min_auroc: 0.0", "min_auroc: 0.05"), {"gate"}),
    "dependability.ood.max_accepted_fraction": (("max_accepted_fraction: 1.0", "max_accepted_fraction: 0.99"),
                                                {"gate"}),
    "dependability.ood.detector": (("detector: knn", "detector: mahalanobis"), {"dependability"}),
    "dependability.ood.ood_sources": (("ood: {", "ood: {ood_sources: [ood], "), {"dependability"}),
    "dependability.robustness.corruptions": (("[fog, gaussian_noise]", "[fog]"), {"dependability"}),
    "dependability.robustness.severities": (("severities: [2]", "severities: [1]"), {"dependability"}),
    "dependability.robustness.max_accuracy_drop": (("max_accuracy_drop: 0.5", "max_accuracy_drop: 0.6"), {"gate"}),
    "dependability.calibration": (("max_ece: 0.5", "max_ece: 0.6"), {"gate"}),
    "dependability.explain": (("gradcam_samples: 4", "gradcam_samples: 2"), {"dependability"}),
    "serving.storage_uri": (("compress: {", "serving: {storage_uri: 's3://other/models'}\ncompress: {"),
                            {"promote"}),
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh repository after `autodl compile` and a full `dvc repro` of the detection spec, committed."""
    repo = project_repo(tmp_path_factory.mktemp("e2e-detection"), {"boxes": SPEC})
    (repo / "ood").mkdir()  # an out-of-distribution folder for the ood_sources edit
    Image.fromarray(skimage_data.astronaut()).save(repo / "ood" / "astronaut.png")
    return compile_and_repro(repo)


def test_repro_builds_the_data_trains_a_detector_and_reports_map(pipeline: Path) -> None:
    log = (pipeline / "repro.log").read_text()
    ran = stages_run(log, "boxes")
    assert ran == ["synthesize", "ingest", "validate", "embed", "clean", "split", "prune", "train", "evaluate",
                   "compress", "export", "dependability", "gate", "promote"]
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


def test_the_detector_passes_its_gate_is_promoted_and_described(pipeline: Path) -> None:
    verdict = json.loads((pipeline / "reports/boxes/gate/verdict.json").read_text())
    assert verdict["passed"] is True
    names = {check["name"] for check in verdict["checks"]}
    assert {"map", "map50", "ood_auroc", "ood_accepted_fraction", "robustness.fog", "robustness.gaussian_noise",
            "calibration_dece", "budget.map_drop"} <= names
    figures = json.loads((pipeline / "reports/boxes/dependability/metrics.json").read_text())
    assert figures["task"] == "detection"
    assert 0.0 <= figures["map"] <= figures["map50"] <= 1.0
    assert set(figures["robustness"]["families"]) == {"fog", "gaussian_noise"}
    assert figures["robustness"]["held_out"] == ["gaussian_noise"]  # fog is a training augmentation
    assert figures["ood"]["detector"] == "knn"
    promoted = YAML(typ="safe").load((pipeline / "k8s/boxes/promoted.yaml").read_text())
    service = YAML(typ="safe").load((pipeline / "k8s/boxes/base/inferenceservice.yaml").read_text())
    assert promoted["digest"].replace(":", "-") in service["spec"]["predictor"]["model"]["storageUri"]
    assert promoted["variant"] == figures["variant"]
    card = (pipeline / "reports/boxes/model_card.md").read_text()
    for words in ("(object detector)", "| deployable (", "| gaussian_noise |"):
        assert words in card
    preprocess = json.loads((pipeline / "models/boxes/release/preprocess.json").read_text())
    assert preprocess["task"] == "detection"
    assert preprocess["detection"]["input_wh"] == [96, 96]
    report = (pipeline / "reports/boxes/dependability.html").read_text()
    for words in ("GATE PASSED", "D-ECE", "EigenCAM"):
        assert words in report
    for figure in ("robustness", "reliability", "ood_scores", "gradcam"):
        assert (pipeline / f"reports/boxes/dependability/{figure}.png").stat().st_size > 1000, figure


def test_every_detection_report_renders_offline_in_a_real_browser(pipeline: Path, offline_browser,
                                                                  tmp_path: Path) -> None:
    assert_project_reports_render_offline(pipeline, "boxes", offline_browser, tmp_path, report_images=4)


def test_autodl_serve_answers_a_real_request_with_the_promoted_detector_s_boxes(pipeline: Path,
                                                                               tmp_path: Path) -> None:
    image_path = next((pipeline / "data/boxes/ingest").rglob("*.png"))
    width, height = Image.open(image_path).size
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(image_path.read_bytes()).decode()]}],
            "parameters": {"score_threshold": 0.0, "max_detections": 5}}
    with autodl_serve(pipeline, "specs/boxes.yaml", tmp_path / "serve.log") as base:
        url = f"{base}/v2/models/boxes/infer"
        response = httpx.post(url, json=body, timeout=30)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        count = outputs["detections_per_image"]["data"][0]
        if outputs["abstained"]["data"][0]:
            assert count == 0
        else:
            assert 1 <= count <= 5, "score_threshold 0 asks for every detection, max_detections caps them"
        assert outputs["boxes"]["shape"] == [count, 4]
        assert outputs["labels"]["datatype"] == "INT64"
        boxes = outputs["boxes"]["data"]
        assert all(-1 <= v <= max(width, height) + 1 for v in boxes), "boxes are in the image's own pixels"
        assert set(outputs["label_names"]["data"]) <= {"0", "1", "2"}
        bad = httpx.post(url, json={**body, "parameters": {"nms_iou": 7}}, timeout=30)
        assert bad.status_code == 400
        assert "nms_iou" in bad.json()["error"]


def _k8s(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in (repo / "k8s").rglob("*") if p.is_file()}


def test_a_failing_detection_threshold_stops_repro_and_leaves_k8s_byte_for_byte(pipeline: Path,
                                                                               tmp_path: Path) -> None:
    clone = tmp_path / "strict"
    shutil.copytree(pipeline, clone, symlinks=True)
    before = _k8s(clone)
    spec = clone / "specs" / "boxes.yaml"
    spec.write_text(spec.read_text().replace("min_map: 0.005", "min_map: 0.99"))
    autodl(clone, "compile")
    done = run(clone, sys.executable, "-m", "dvc", "repro", check=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert re.findall(r"Running stage '([\w-]+)'", output) == ["boxes-gate"]
    assert re.search(r"map: measured [0-9.e-]+, dependability.min_map needs at least 0.99 ", output)
    assert json.loads((clone / "reports/boxes/gate/verdict.json").read_text())["failed"] == ["map"]
    assert _k8s(clone) == before


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


def test_a_data_loop_round_for_the_detector_with_an_ensemble(pipeline: Path, tmp_path: Path) -> None:
    """The loop on a detector: an ensemble of two members (one more trained), the pool scored by box
    disagreement, the ensemble's agreed boxes as Label Studio rectangles in percent and as COCO for CVAT."""
    clone = pool_clone(pipeline, tmp_path / "loop", "boxes", 16)
    spec = clone / "specs" / "boxes.yaml"
    spec.write_text(SPEC + "active_learning: {pool: [{kind: images, path: pool}], strategy: ensemble, annotator: "
                    "ensemble, batch_size: 5, ensemble: {members: 2, epochs: 1}}\n")
    autodl(clone, "compile")
    assert changed_stages(clone, "boxes") == {"ensemble", "select"}
    dvc(clone, "repro", "boxes-select")
    tasks = json.loads((clone / "data/boxes/select/labelstudio_tasks.json").read_text())
    assert len(tasks) == 5
    for item in tasks:
        assert item["data"]["autodl_path"].startswith("pool/")
        for result in item["predictions"][0]["result"]:
            value = result["value"]
            assert result["type"] == "rectanglelabels"
            assert value["rectanglelabels"][0] in ("0", "1", "2")
            assert 0 <= value["x"] <= value["x"] + value["width"] <= 100.0001
            assert 0 <= value["y"] <= value["y"] + value["height"] <= 100.0001
    coco = json.loads((clone / "data/boxes/select/queue_coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == [t["data"]["autodl_path"] for t in tasks]
    assert len(coco["annotations"]) == sum(len(t["predictions"][0]["result"]) for t in tasks)
    lines = (clone / "data/boxes/select/scores.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {"ensemble", "entropy", "low_confidence_boxes"} <= set(header)
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    disagreement = sorted((float(r["ensemble"]) for r in rows), reverse=True)
    assert sorted((float(r["ensemble"]) for r in rows if r["queue_rank"]), reverse=True) == disagreement[:5]
    assert (clone / "reports/boxes/select/queue.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((clone / "reports/boxes/ensemble/summary.json").read_text())["members"] == 2

