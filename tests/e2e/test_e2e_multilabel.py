"""End to end for the multi-label task with the real tools: a tiny tagging spec on the embedded photo mosaics
through the whole `dvc repro` (ingest to promote), the promoted tagger answering real HTTP requests from
`autodl serve` with the tags above their shipped thresholds, its reports opening offline in a real browser, and
a per-tag threshold it misses stopping the pipeline with k8s/ untouched."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from ruamel.yaml import YAML

from core.fsutil import read_csv
from tests.browser import assert_project_reports_render_offline
from tests.e2e.helpers import (
    autodl,
    autodl_serve,
    changed_stages,
    compile_and_repro,
    dvc,
    project_repo,
    run,
    stages_run,
)
from vision.data.photo_tags import generate

pytestmark = pytest.mark.slow

TAGS = ["animal", "building", "food", "person", "plant"]
SPEC = """\
name: scenes
task: multilabel
seed: 0
classes: [animal, building, food, person, plant]
data:
  sources:
    - {kind: photo_mosaics, images: 160, size_px: 64, grid: 2}
  quality: {min_images_per_class: 10}
  embedding: {input_size_px: 32}
model: {backbone: resnet10t, input_size_px: 32}
augment: {}  # no augmentation: the figures below were measured without
train: {epochs: 4, batch_size: 16, select_by: val_map, balance: loss}
compress: {methods: [structured_prune, quantize], prune_steps: 1, max_prune_ratio: 0.3, finetune_epochs: 1,
           quantization: {qat_epochs: 0}, budget: {max_accuracy_drop: 0.1}}
dependability:
  min_map: 0.5
  min_tag_ap: 0.3
  ood: {detector: knn, min_auroc: 0.0, max_accepted_fraction: 1.0}
  robustness: {corruptions: [fog, gaussian_noise], severities: [2], max_accuracy_drop: 0.5}
  calibration: {max_ece: 0.5}
active_learning: {pool: [{kind: images, path: pool}], strategy: entropy, batch_size: 4,
                  auto_label: {min_confidence: 0.9, max_images: 3}}
"""
# Limits a four-epoch tagger of about a hundred mosaics meets (its test mAP is about 0.95): the test is that every
# stage runs on it, passes a gate, is promoted and served, and that a per-tag limit it misses stops it.


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh repository after `autodl compile` and a full `dvc repro` of the tagging spec, committed."""
    repo = project_repo(tmp_path_factory.mktemp("e2e-multilabel"), {"scenes": SPEC})
    (repo / "pool").mkdir()  # unlabelled mosaics for the loop's round (another seed: other pictures)
    for index, (pixels, _) in enumerate(generate(12, 64, 2, seed=7)):
        Image.fromarray(pixels).save(repo / "pool" / f"{index:02d}.png")
    return compile_and_repro(repo)


def test_repro_runs_the_tagger_from_ingest_to_promote(pipeline: Path) -> None:
    log = (pipeline / "repro.log").read_text()
    assert stages_run(log, "scenes") == [
        "ingest", "validate", "embed", "clean", "split", "prune", "train", "evaluate", "compress", "export",
        "dependability", "gate", "promote", "select"]
    ingest = json.loads((pipeline / "reports/scenes/ingest/summary.json").read_text())
    assert ingest["images"] == 160
    assert set(ingest["per_tag"]) == set(TAGS)
    assert {row["tag"] for row in read_csv(pipeline / "data/scenes/ingest/tags.csv")} == set(TAGS)
    trained = json.loads((pipeline / "reports/scenes/train/metrics.json").read_text())
    assert trained["selected_by"] == "val_map"
    metrics = json.loads((pipeline / "reports/scenes/evaluate/metrics.json").read_text())
    assert metrics["map"] > 0.6, "four epochs tell the photographs' subjects apart well above chance"
    assert "val_map" in dvc(pipeline, "metrics", "show", "--json").stdout


def test_the_tagger_passes_its_gate_and_ships_its_thresholds(pipeline: Path) -> None:
    verdict = json.loads((pipeline / "reports/scenes/gate/verdict.json").read_text())
    assert verdict["passed"] is True
    assert [c["name"] for c in verdict["checks"]] == [
        "map", "tag_ap", "ood_auroc", "ood_accepted_fraction", "robustness.fog", "robustness.gaussian_noise",
        "calibration_ece", "budget.map_drop"]
    figures = json.loads((pipeline / "reports/scenes/dependability/metrics.json").read_text())
    assert figures["task"] == "multilabel"
    assert set(figures["per_tag"]) == set(TAGS)
    per_tag_drop = figures["robustness"]["per_tag_drop"]
    assert set(per_tag_drop) == set(TAGS)
    assert all(set(drops) == {"fog", "gaussian_noise"} for drops in per_tag_drop.values())
    preprocess = json.loads((pipeline / "models/scenes/release/preprocess.json").read_text())
    assert preprocess["task"] == "multilabel"
    assert len(preprocess["thresholds"]) == len(TAGS)
    assert all(0.0 < t < 1.0 for t in preprocess["thresholds"])
    promoted = YAML(typ="safe").load((pipeline / "k8s/scenes/promoted.yaml").read_text())
    service = YAML(typ="safe").load((pipeline / "k8s/scenes/base/inferenceservice.yaml").read_text())
    assert promoted["digest"].replace(":", "-") in service["spec"]["predictor"]["model"]["storageUri"]
    card = (pipeline / "reports/scenes/model_card.md").read_text()
    for words in ("(multi-label tagger)", "| tag | AP |", "| person |", "| gaussian_noise |"):
        assert words in card
    report = (pipeline / "reports/scenes/dependability.html").read_text()
    for words in ("GATE PASSED", "Tagging quality", "Calibration of tag probabilities"):
        assert words in report
    assert not (pipeline / "reports/scenes/dependability/gradcam.png").exists()


def test_every_tagger_report_renders_offline_in_a_real_browser(pipeline: Path, offline_browser,
                                                               tmp_path: Path) -> None:
    assert_project_reports_render_offline(pipeline, "scenes", offline_browser, tmp_path, report_images=3)


def test_autodl_serve_answers_with_the_tags_above_their_thresholds(pipeline: Path, tmp_path: Path) -> None:
    tagged: dict[str, set[str]] = {}
    for row in read_csv(pipeline / "data/scenes/ingest/tags.csv"):
        tagged.setdefault(row["path"], set()).add(row["tag"])
    paths = sorted(tagged)[:8]
    images = [base64.b64encode((pipeline / "data/scenes/ingest" / p).read_bytes()).decode() for p in paths]
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)], "data": images}]}
    with autodl_serve(pipeline, "specs/scenes.yaml", tmp_path / "serve.log") as base:
        url = f"{base}/v2/models/scenes/infer"
        response = httpx.post(url, json=body, timeout=30)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        counts = outputs["tags_per_image"]["data"]
        assert len(counts) == len(images)
        probabilities = np.asarray(outputs["probabilities"]["data"]).reshape(len(images), len(TAGS))
        thresholds = np.asarray(outputs["thresholds"]["data"])
        given = outputs["tags"]["data"]
        start, agreed = 0, []
        for index, count in enumerate(counts):
            tags = given[start:start + count]
            start += count
            if outputs["abstained"]["data"][index]:
                assert tags == []
                continue
            above = [tag for tag, p, t in zip(TAGS, probabilities[index], thresholds, strict=True) if p > t]
            assert tags == above, "the answer is every tag whose calibrated probability passes its threshold"
            agreed += [(tag in tags) == (tag in tagged[paths[index]]) for tag in TAGS]
        assert start == len(given)
        assert np.mean(agreed) >= 0.75, f"only {np.mean(agreed):.2f} of the (image, tag) decisions are right"
        v1 = httpx.post(f"{base}/v1/models/scenes:predict",
                        json={"instances": [{"b64": images[0]}]}, timeout=30).json()["predictions"][0]
        assert set(v1["probabilities"]) == set(v1["thresholds"]) == set(TAGS)
        assert v1["tags"] == given[:counts[0]]
        bad = httpx.post(url, json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                                "data": ["bm90IGFuIGltYWdl"]}]}, timeout=30)
        assert bad.status_code == 400
        assert "error" in bad.json()


def _k8s(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in (repo / "k8s").rglob("*") if p.is_file()}


def test_a_tag_below_its_ap_floor_stops_repro_and_leaves_k8s_byte_for_byte(pipeline: Path, tmp_path: Path) -> None:
    clone = tmp_path / "strict"
    shutil.copytree(pipeline, clone, symlinks=True)
    before = _k8s(clone)
    figures = json.loads((clone / "reports/scenes/dependability/metrics.json").read_text())
    weakest = min(figures["per_tag"], key=lambda tag: figures["per_tag"][tag]["ap"])
    floor = round(figures["per_tag"][weakest]["ap"] + 0.001, 6)
    assert floor < figures["map"], "the limit sits between the weakest tag and the mean: only the floor fails"
    spec = clone / "specs" / "scenes.yaml"
    spec.write_text(spec.read_text().replace("min_tag_ap: 0.3", f"min_tag_ap: {floor}"))
    autodl(clone, "compile")
    assert changed_stages(clone, "scenes") == {"gate"}
    done = run(clone, sys.executable, "-m", "dvc", "repro", check=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert re.findall(r"Running stage '([\w-]+)'", output) == ["scenes-gate"]
    assert f"dependability.min_tag_ap needs at least {floor:g}" in output
    assert f"'{weakest}'" in output, "the failure names the tag below its floor"
    assert json.loads((clone / "reports/scenes/gate/verdict.json").read_text())["failed"] == ["tag_ap"]
    assert _k8s(clone) == before


def test_the_loop_queues_the_pool_by_per_tag_entropy_with_the_tags_as_one_multiple_choice(pipeline: Path) -> None:
    selection = pipeline / "data/scenes/select"
    scores = read_csv(selection / "scores.csv")
    assert len(scores) == 12
    assert {f"entropy.{tag}" for tag in TAGS} <= set(scores[0])
    for row in scores:  # the image's entropy is the mean of its tags'
        assert float(row["entropy"]) == pytest.approx(np.mean([float(row[f"entropy.{t}"]) for t in TAGS]), abs=1e-5)
    queued = sorted((r for r in scores if r["queue_rank"]), key=lambda r: int(r["queue_rank"]))
    assert len(queued) == 4
    rest = [float(r["entropy"]) for r in scores if not r["queue_rank"]]
    assert min(float(r["entropy"]) for r in queued) >= max(rest), "the four most uncertain images are queued"
    tasks = json.loads((selection / "labelstudio_tasks.json").read_text())
    assert len(tasks) == 4
    for item in tasks:
        results = item["predictions"][0]["result"]
        assert len(results) <= 1, "every guessed tag in one multiple-choice result"
        assert all(r["type"] == "choices" and set(r["value"]["choices"]) <= set(TAGS) for r in results)
    assert 'choice="multiple"' in (selection / "labelstudio_config.xml").read_text()
    assert read_csv(selection / "queue.csv")[0].keys() == {"path", "tags", "scores"}
    summary = json.loads((pipeline / "reports/scenes/select/summary.json").read_text())
    assert summary["queued"] == 4
    assert summary["auto_labelled"] <= 3


def test_pipeline_is_up_to_date_after_repro(pipeline: Path) -> None:
    assert changed_stages(pipeline, "scenes") == set()
