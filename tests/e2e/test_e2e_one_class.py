"""A one-class detector end to end: the most common detector there is (cars, people, trees, defects).

A tiny spec with `classes: ["7"]` (the embedded digits-on-photos generator pastes only sevens, some images have
none) runs through a real `dvc repro` from synthesis to promotion; the server answers its boxes over HTTP; and
one data-loop round queues pool images with one-class rectangles for Label Studio.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from tests.e2e import helpers as e2e
from tests.e2e.test_e2e_detection import SPEC as DETECTION_SPEC

pytestmark = pytest.mark.slow

SPEC = (DETECTION_SPEC.replace("name: boxes", "name: sevens").replace("seed: 1", "seed: 2")
        .replace('classes: ["0", "1", "2"]', 'classes: ["7"]').replace("data/boxes/", "data/sevens/")
        .replace("images: 90", "images: 70").replace("digits_per_image: [1, 3]", "digits_per_image: [0, 3]")
        .replace("max_instance_imbalance: 5.0", "max_instance_imbalance: 1.0"))
"""The detection suite's tiny spec with one class: the generator pastes only sevens, and some images get none."""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return e2e.compile_and_repro(e2e.project_repo(tmp_path_factory.mktemp("e2e-one-class"), {"sevens": SPEC}))


def test_a_one_class_detector_runs_from_synthesis_to_promotion(pipeline: Path) -> None:
    log = (pipeline / "repro.log").read_text()
    assert e2e.stages_run(log, "sevens") == [
        "synthesize", "ingest", "validate", "embed", "clean", "split", "prune", "train", "evaluate", "compress",
        "export", "dependability", "gate", "promote"]
    ingest = json.loads((pipeline / "reports/sevens/ingest/summary.json").read_text())
    assert set(ingest["instances_per_class"]) == {"7"}
    assert ingest["negative_images"] > 0, "digits_per_image [0, 3] leaves some images without a seven"
    metrics = json.loads((pipeline / "reports/sevens/evaluate/metrics.json").read_text())
    assert set(metrics["per_class_ap"]) == {"7"}
    assert 0.0 <= metrics["map"] <= metrics["map50"] <= 1.0
    rows = (pipeline / "reports/sevens/evaluate/precision_recall.csv").read_text().splitlines()
    assert rows[0] == "recall,precision_7"
    confusion = (pipeline / "reports/sevens/evaluate/confusion.csv").read_text().splitlines()
    assert set(confusion[1:]) <= {"7,7", "7,background", "background,7"}
    verdict = json.loads((pipeline / "reports/sevens/gate/verdict.json").read_text())
    assert verdict["passed"] is True, verdict
    figures = json.loads((pipeline / "reports/sevens/dependability/metrics.json").read_text())
    assert set(figures["per_class_ap"]) == {"7"}
    assert figures["calibration"]["detections"] > 0
    assert (pipeline / "k8s/sevens/promoted.yaml").is_file()
    preprocess = json.loads((pipeline / "models/sevens/release/preprocess.json").read_text())
    assert preprocess["classes"] == ["7"]


def test_the_server_answers_one_class_boxes_over_http(pipeline: Path, tmp_path: Path) -> None:
    image = next(p for p in sorted((pipeline / "data/sevens/ingest").rglob("*.png")))
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(image.read_bytes()).decode()]}],
            "parameters": {"score_threshold": 0.0, "max_detections": 4}}
    with e2e.autodl_serve(pipeline, "specs/sevens.yaml", tmp_path / "serve.log") as base:
        response = httpx.post(f"{base}/v2/models/sevens/infer", json=body, timeout=30)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        count = outputs["detections_per_image"]["data"][0]
        assert outputs["boxes"]["shape"] == [count, 4]
        assert set(outputs["labels"]["data"]) <= {0}
        assert set(outputs["label_names"]["data"]) <= {"7"}
        if not outputs["abstained"]["data"][0]:
            assert count >= 1, "score_threshold 0 asks for every detection"


def test_a_loop_round_queues_one_class_rectangles(pipeline: Path, tmp_path: Path) -> None:
    clone = e2e.pool_clone(pipeline, tmp_path / "loop", "sevens", 12)
    spec = clone / "specs" / "sevens.yaml"
    spec.write_text(SPEC + "active_learning: {pool: [{kind: images, path: pool}], batch_size: 4}\n")
    e2e.autodl(clone, "compile")
    assert e2e.changed_stages(clone, "sevens") == {"select"}
    e2e.dvc(clone, "repro", "sevens-select")
    tasks = json.loads((clone / "data/sevens/select/labelstudio_tasks.json").read_text())
    assert len(tasks) == 4
    labels = {result["value"]["rectanglelabels"][0] for item in tasks for prediction in item["predictions"]
              for result in prediction["result"]}
    assert labels <= {"7"}
    header = (clone / "data/sevens/select/scores.csv").read_text().splitlines()[0].split(",")
    assert {"entropy", "low_confidence_boxes"} <= set(header)
