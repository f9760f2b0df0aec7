"""Detect, then classify, end to end with the real tools: a fine detector of three digits (the baseline), a
one-class `digit` detector on its very images, boxes and splits (a `project` source), a classifier on the crops of
the coarse detector's boxes and the cascade joining them run through one real `dvc repro` to a promoted pair; the
pair's release holds both models and the record both digests; `autodl serve` answers a test image with the boxes
and fine classes the evaluation recorded; an edit to the classifier's spec re-runs only the classifier's and the
cascade's stages."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from ruamel.yaml import YAML

from tests.e2e import helpers as e2e
from tests.e2e.test_e2e_detection import SPEC as DETECTION_SPEC

pytestmark = pytest.mark.slow

FINE = (DETECTION_SPEC.replace("name: boxes", "name: fine").replace("data/boxes/", "data/fine/")
        .replace(",\n        hpo: {trials: 2, sampler: random, epochs_per_trial: 1, space: {lr: {low: 1.0e-3, high: "
                 "4.0e-3, log: true}}}}", "}")
        .replace("methods: [structured_prune, distill, quantize], prune_steps: 1, max_prune_ratio: 0.3, "
                 "finetune_epochs: 1", "methods: [quantize]"))
"""The single-stage detector of the fine classes: the baseline, and the data the coarse detector reads."""

COARSE = (FINE.replace("name: fine", "name: marks").replace('classes: ["0", "1", "2"]', 'classes: [digit]')
          .replace("  synthesize: {kind: digits_on_photos, images: 90, image_size_px: 96, digit_size_px: [20, 40], "
                   "digits_per_image: [1, 3]}\n", "")
          .replace("{kind: coco, annotations: data/fine/synthesize/annotations.json}",
                   '{kind: project, project: fine, class_map: {"*": digit}}')
          .replace("max_instance_imbalance: 5.0", "max_instance_imbalance: 1.0"))
"""One class, `digit`, on the fine detector's images and splits."""

CLASSIFIER = """\
name: kinds
seed: 1
classes: ["0", "1", "2"]
data:
  sources:
    - {kind: crops, project: marks, padding: 0.1, min_size_px: 8}
  quality: {min_images_per_class: 5}
  embedding: {input_size_px: 32}
model: {backbone: resnet10t, input_size_px: 32}
augment: {}  # no augmentation: the figures below were measured without
train: {epochs: 4, batch_size: 16}
compress: {methods: [quantize], budget: {max_accuracy_drop: 0.3}}
dependability: {min_accuracy: 0.0, ood: {detector: energy, min_auroc: 0.0, max_accepted_fraction: 1.0},
                explain: {gradcam_samples: 2}, calibration: {max_ece: 1.0},
                robustness: {corruptions: [fog], severities: [2], max_accuracy_drop: 1.0}}
"""
"""The fine classes of the coarse detector's boxes, learned from their crops (each in its image's split)."""

CASCADE = """\
name: pair
task: cascade
classes: ["0", "1", "2"]
cascade: {detector: marks, classifier: kinds, baseline: fine, padding: 0.1}
dependability: {min_map: 0.0, min_map50: 0.0, ood: {max_accepted_fraction: 1.0}, calibration: {max_ece: 1.0},
                robustness: {corruptions: [fog, gaussian_noise], severities: [2], max_accuracy_drop: 1.0}}
"""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = e2e.project_repo(tmp_path_factory.mktemp("e2e-cascade"), {
        "fine": FINE, "marks": COARSE, "kinds": CLASSIFIER, "pair": CASCADE})
    return e2e.compile_and_repro(repo)


def test_one_repro_runs_both_projects_and_the_cascade_to_a_promoted_pair(pipeline: Path) -> None:
    log = (pipeline / "repro.log").read_text()
    assert e2e.stages_run(log, "pair") == ["evaluate", "dependability", "gate", "promote"]
    assert "promote" in e2e.stages_run(log, "marks")
    assert "promote" in e2e.stages_run(log, "kinds")
    coarse = json.loads((pipeline / "reports/marks/ingest/summary.json").read_text())
    fine = json.loads((pipeline / "reports/fine/ingest/summary.json").read_text())
    assert coarse["images"] == fine["images"] == 90
    assert set(coarse["instances_per_class"]) == {"digit"}
    assert sum(coarse["instances_per_class"].values()) == sum(fine["instances_per_class"].values())
    split = {row.split(",")[0]: row.split(",")[3] for row in
             (pipeline / "data/fine/split/split.csv").read_text().splitlines()[1:]}
    assert all(split[row.split(",")[0]] == row.split(",")[3] for row in
               (pipeline / "data/marks/split/split.csv").read_text().splitlines()[1:]), "one split for both"
    crops = json.loads((pipeline / "reports/kinds/ingest/summary.json").read_text())
    assert set(crops["per_class"]) == {"0", "1", "2"}

    metrics = json.loads((pipeline / "reports/pair/evaluate/metrics.json").read_text())
    assert metrics["test_images"] == split_count(split, "test")
    for key in ("map", "map50", "detector_map", "baseline_map", "baseline_map50"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["map"] <= metrics["map50"]
    figures = json.loads((pipeline / "reports/pair/dependability/metrics.json").read_text())
    assert set(figures["robustness"]["families"]) == {"fog", "gaussian_noise"}
    assert set(figures["ood"]["sets"]) == {"textures", "noise", "photos"}
    assert 0.0 <= figures["ood"]["worst_answered_fraction"] <= 1.0
    assert 0.0 <= figures["calibration"]["dece"] <= 1.0
    assert set(metrics["per_class_ap"]) <= {"0", "1", "2"}
    rows = (pipeline / "reports/pair/evaluate/per_class.csv").read_text().splitlines()
    assert rows[0] == "class,cascade_ap,baseline_ap"
    answers = json.loads((pipeline / "data/pair/evaluate/answers.json").read_text())
    assert len(answers) == metrics["test_images"]
    assert {box["coarse"] for answer in answers for box in answer["boxes"]} <= {"digit"}
    assert {box["fine"] for answer in answers for box in answer["boxes"]} <= {"0", "1", "2", None}


def split_count(split: dict[str, str], name: str) -> int:
    return sum(value == name for value in split.values())


def test_the_pair_ships_as_one_release_recording_both_digests(pipeline: Path) -> None:
    verdict = json.loads((pipeline / "reports/pair/gate/verdict.json").read_text())
    assert verdict["passed"] is True, verdict
    record = YAML(typ="safe").load((pipeline / "k8s/pair/promoted.yaml").read_text())
    marks = YAML(typ="safe").load((pipeline / "k8s/marks/promoted.yaml").read_text())
    kinds = YAML(typ="safe").load((pipeline / "k8s/kinds/promoted.yaml").read_text())
    assert record["detector"] == marks["digest"]
    assert record["classifier"] == kinds["digest"]
    release = pipeline / "models/pair/release"
    assert (release / "detector/model.onnx").read_bytes() == (pipeline / "models/marks/release/model.onnx").read_bytes()
    assert (release / "classifier/model.onnx").read_bytes() == \
        (pipeline / "models/kinds/release/model.onnx").read_bytes()
    settings = json.loads((release / "cascade.json").read_text())
    assert settings["padding"] == 0.1
    assert settings["detector_digest"] == marks["digest"]
    service = YAML(typ="safe").load((pipeline / "k8s/pair/base/inferenceservice.yaml").read_text())
    assert record["digest"].replace(":", "-") in service["spec"]["predictor"]["model"]["storageUri"]
    e2e.autodl(pipeline, "compile", "--check")  # the promotion record is bound to the verdict and dvc.lock
    card = (pipeline / "reports/pair/model_card.md").read_text()
    assert "(detect, then classify)" in card
    assert "| single-stage baseline |" in card
    assert "| fog |" in card
    report = e2e.autodl(pipeline, "report", "--rev", "HEAD").stdout  # what a pull request is shown
    assert "## Gate: cascade pair: PASSED" in report
    assert "- `reports/pair/model_card.html`" in report
    assert "reports/pair/dependability.html" not in report, "a cascade writes no such page"


def test_editing_the_classifier_re_runs_only_the_classifier_and_the_cascade(pipeline: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(pipeline, clone, symlinks=True)
    (clone / "specs" / "kinds.yaml").write_text(CLASSIFIER.replace("epochs: 4", "epochs: 5"))
    e2e.autodl(clone, "compile")
    assert not {name for name in json.loads(e2e.dvc(clone, "status", "--json").stdout or "{}")
                if not name.startswith(("kinds-", "pair-"))}
    done = e2e.dvc(clone, "repro")
    log = done.stdout + done.stderr
    assert e2e.stages_run(log, "fine") == e2e.stages_run(log, "marks") == [], "neither detector re-runs"
    assert e2e.stages_run(log, "kinds")[0] == "train"
    assert e2e.stages_run(log, "pair") == ["evaluate", "dependability", "gate", "promote"], "on the new classifier"
    record = YAML(typ="safe").load((clone / "k8s/pair/promoted.yaml").read_text())
    kinds = YAML(typ="safe").load((clone / "k8s/kinds/promoted.yaml").read_text())
    assert record["classifier"] == kinds["digest"], "the pair records the classifier it was judged with"


def test_the_served_pair_answers_a_test_image_as_its_evaluation_did(pipeline: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTODL_ABSTAIN_ON_OOD", "false")  # the evaluation measures the models with abstention off
    answers = json.loads((pipeline / "data/pair/evaluate/answers.json").read_text())
    answer = max(answers, key=lambda a: len(a["boxes"]))
    image = (pipeline / "data/marks/ingest" / answer["path"]).read_bytes()
    encoded = base64.b64encode(image).decode()
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [encoded]}]}
    with e2e.autodl_serve(pipeline, "specs/pair.yaml", tmp_path / "serve.log") as base:
        response = httpx.post(f"{base}/v2/models/pair/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    assert outputs["detections_per_image"] == [len(answer["boxes"])]
    assert outputs["labels"] == [box["fine"] or "" for box in answer["boxes"]]
    assert outputs["coarse_labels"] == [box["coarse"] for box in answer["boxes"]]
    assert np.allclose(outputs["boxes"], [v for box in answer["boxes"] for v in box["box"]], atol=0.01)
    assert np.allclose(outputs["fine_scores"], [box["fine_score"] for box in answer["boxes"]], atol=1e-5)


def test_a_loop_round_queues_the_pairs_answers_and_the_labels_return_to_the_fine_project(pipeline: Path,
                                                                                         tmp_path: Path) -> None:
    """The pair scores an unlabelled pool; the queue goes to Label Studio with each box's fine class (the coarse
    class and both scores beside it); the export of the queue, accepted as it was pre-labelled, is a
    `labelstudio` source of the fine project, whose ingest reads the boxes in its own classes."""
    clone = e2e.pool_clone(pipeline, tmp_path / "loop", "fine", 12)
    (clone / "specs" / "pair.yaml").write_text(CASCADE + "active_learning: {pool: [{kind: images, path: pool}], "
                                               "strategy: least_confidence, batch_size: 4}\n")
    e2e.autodl(clone, "compile")
    assert e2e.changed_stages(clone, "pair") == {"select"}
    e2e.dvc(clone, "repro", "pair-select")
    tasks = json.loads((clone / "data/pair/select/labelstudio_tasks.json").read_text())
    assert len(tasks) == 4
    answered_boxes = 0
    for item in tasks:
        assert item["data"]["autodl_path"].startswith("pool/")
        assert item["predictions"][0]["model_version"].startswith("autodl:pair:sha256-")
        for result in item["predictions"][0]["result"]:
            assert result["type"] == "rectanglelabels"
            assert result["value"]["rectanglelabels"][0] in ("0", "1", "2")
            assert result["meta"]["text"][0].startswith("digit ")
            answered_boxes += 1
    assert answered_boxes, "the pair answers some pool image with a named box"
    assert '<Label value="2"/>' in (clone / "data/pair/select/labelstudio_config.xml").read_text()
    lines = (clone / "data/pair/select/scores.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {"box", "fine_class", "cascade", "answered_boxes"} <= set(header)
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    ranked = sorted((float(r["cascade"]) for r in rows), reverse=True)
    assert sorted((float(r["cascade"]) for r in rows if r["queue_rank"]), reverse=True) == ranked[:4]

    export = [{"id": n, "data": t["data"], "predictions": t["predictions"], "annotations": [{
        "id": 100 + n, "completed_by": {"id": 3, "email": "person@example.com"}, "was_cancelled": False,
        "result": t["predictions"][0]["result"]}]} for n, t in enumerate(tasks, start=1)]
    (clone / "data/labels").mkdir(parents=True)
    (clone / "data/labels/round-1.json").write_text(json.dumps(export))
    fine = FINE.replace("    - {kind: coco, annotations: data/fine/synthesize/annotations.json}\n",
                        "    - {kind: coco, annotations: data/fine/synthesize/annotations.json}\n"
                        "    - {kind: labelstudio, path: data/labels}\n")
    assert fine != FINE
    (clone / "specs" / "fine.yaml").write_text(fine)
    e2e.autodl(clone, "compile")
    e2e.dvc(clone, "repro", "fine-ingest")
    manifest = (clone / "data/fine/ingest/manifest.csv").read_text().splitlines()
    columns = manifest[0].split(",")
    looped = [dict(zip(columns, line.split(","), strict=True)) for line in manifest[1:]]
    looped = [row for row in looped if row["round"] == "1"]
    assert len(looped) == 4
    assert {row["annotator"] for row in looped} == {"labelstudio:person@example.com"}
    boxes = (clone / "data/fine/ingest/boxes.csv").read_text().splitlines()
    looped_paths = {row["path"] for row in looped}
    returned = [line for line in boxes[1:] if line.split(",")[0] in looped_paths]
    assert len(returned) == answered_boxes
