"""One round of the data loop with the real tools: `dvc repro` writes the label queue from an unlabelled pool,
a simulated annotator answers it in Label Studio's export format from the true labels, and the next
`dvc repro` retrains on the grown set; DVC names exactly what re-runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from ops.workspace import copy_project_code
from tests.conftest import git
from tests.e2e.helpers import autodl, changed_stages, dvc

pytestmark = pytest.mark.slow

LABELLED_PER_CLASS = 20
POOL_PER_CLASS = 25
BATCH = 12

SPEC = f"""\
name: loop
seed: 3
classes: ["0", "1", "2"]
data:
  sources:
    - {{kind: sklearn_digits, max_images_per_class: {LABELLED_PER_CLASS}}}
    - {{kind: labelstudio, path: data/labels}}
  split: {{train: 0.6, val: 0.2, test: 0.2}}
  quality: {{min_images_per_class: 10}}
  embedding: {{input_size_px: 64}}
model: {{backbone: resnet10t, input_size_px: 16}}
augment: {{}}  # no augmentation: the loop, not robustness, is tested here
train: {{epochs: 4, batch_size: 16}}
compress: {{methods: [quantize], budget: {{max_accuracy_drop: 0.5}}}}
dependability: {{min_accuracy: 0.3, ood: {{detector: mahalanobis, min_auroc: 0.0, max_accepted_fraction: 1.0}},
                explain: {{gradcam_samples: 2}}, calibration: {{max_ece: 1.0}},
                robustness: {{corruptions: [fog], severities: [1], max_accuracy_drop: 1.0}}}}
active_learning:
  pool: [{{kind: images, path: data/pool}}]
  strategy: hybrid
  batch_size: {BATCH}
  auto_label: {{min_confidence: 0.95, max_images: 5}}
"""


def write_pool(repo: Path) -> dict[str, str]:
    """Digits the labelled source does not take (beyond the first 20 of each class), as unlabelled PNGs; returns
    the oracle: pool path -> true class."""
    digits = load_digits()
    oracle, taken = {}, {"0": 0, "1": 0, "2": 0}
    (repo / "data/pool/cam-a").mkdir(parents=True)
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        label = str(target)
        if label not in taken:
            continue
        taken[label] += 1
        if LABELLED_PER_CLASS < taken[label] <= LABELLED_PER_CLASS + POOL_PER_CLASS:
            path = f"data/pool/cam-a/frame-{index:04d}.png"
            Image.fromarray((pixels * 255 / 16).round().astype(np.uint8)).save(repo / path)
            oracle[path] = label
    (repo / "data/pool/notes.txt").write_text("not an image")
    return oracle


def answered(tasks: list[dict], oracle: dict[str, str]) -> list[dict]:
    """A Label Studio JSON export of the queue: the annotator keeps correct pre-annotations and corrects the
    others from the true labels."""
    export = []
    for number, item in enumerate(tasks, start=1):
        truth = oracle[item["data"]["autodl_path"]]
        export.append({"id": number, "data": item["data"], "predictions": item["predictions"], "annotations": [{
            "id": 1000 + number, "completed_by": {"id": 4, "email": "oracle@example.com"}, "was_cancelled": False,
            "ground_truth": False, "lead_time": 2.5, "result": [{
                "id": f"r{number}", "from_name": "label", "to_name": "image", "type": "choices",
                "value": {"choices": [truth]}}]}]})
    return export


@pytest.fixture(scope="module")
def round_one(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    repo = tmp_path_factory.mktemp("loop")
    copy_project_code(repo)
    (repo / "specs").mkdir()
    (repo / "specs/loop.yaml").write_text(SPEC)
    (repo / "data/labels").mkdir(parents=True)
    (repo / "data/labels/README.md").write_text("Label Studio exports, one per round\n")
    oracle = write_pool(repo)
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    autodl(repo, "compile")
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "round 0")
    return repo, oracle


def test_select_writes_the_queue_with_pre_annotations(round_one: tuple[Path, dict[str, str]]) -> None:
    repo, oracle = round_one
    selection = repo / "data/loop/select"
    tasks = json.loads((selection / "labelstudio_tasks.json").read_text())
    assert len(tasks) == BATCH
    assert len({t["data"]["autodl_path"] for t in tasks}) == BATCH
    for item in tasks:
        assert item["data"]["image"] == "/data/local-files/?d=" + item["data"]["autodl_path"]
        assert item["data"]["autodl_path"] in oracle
        [result] = item["predictions"][0]["result"]
        assert result["type"] == "choices"
        assert result["value"]["choices"][0] in ("0", "1", "2")
        assert 0.0 <= result["score"] <= 1.0
    summary = json.loads((repo / "reports/loop/select/summary.json").read_text())
    assert summary["pool_admitted"] + summary["pool_refused"] >= len(oracle)
    assert summary["queued"] == BATCH
    # hybrid: every queued image is among the batch x hybrid_pool (4) most uncertain by margin
    score_lines = (selection / "scores.csv").read_text().splitlines()
    scores = [dict(zip(score_lines[0].split(","), line.split(","), strict=True)) for line in score_lines[1:]]
    margins = sorted((float(r["margin"]) for r in scores), reverse=True)
    assert all(float(r["margin"]) >= margins[4 * BATCH - 1] for r in scores if r["queue_rank"])
    assert sorted(int(r["queue_rank"]) for r in scores if r["queue_rank"]) == list(range(1, BATCH + 1))
    pool = (selection / "pool.csv").read_text()
    assert "notes.txt" in pool
    assert "not an image file name" in pool
    auto = json.loads((selection / "auto_labels.json").read_text())
    assert len(auto) <= 5
    assert not {a["data"]["autodl_path"] for a in auto} & {t["data"]["autodl_path"] for t in tasks}
    assert "<Choices" in (selection / "labelstudio_config.xml").read_text()
    assert (repo / "reports/loop/select/queue.png").read_bytes()[:4] == b"\x89PNG"
    header = (selection / "scores.csv").read_text().splitlines()[0]
    assert {"margin", "entropy", "least_confidence", "queue_rank"} <= set(header.split(","))


def test_labels_back_retrain_on_the_grown_set(round_one: tuple[Path, dict[str, str]]) -> None:
    repo, oracle = round_one
    tasks = json.loads((repo / "data/loop/select/labelstudio_tasks.json").read_text())
    before = json.loads((repo / "reports/loop/train/metrics.json").read_text())
    test_before = (repo / "data/loop/split/split.csv").read_text()
    (repo / "data/labels/round-1.json").write_text(json.dumps(answered(tasks, oracle)))
    # the new export changes the ingest stage's dependency and nothing else: DVC says exactly that
    assert changed_stages(repo, "loop") == {"ingest"}
    impact = json.loads(autodl(repo, "impact", "specs/loop.yaml", "--json").stdout)
    direct = {row["stage"]: row["reasons"] for row in impact if row["direct"]}
    assert direct == {"loop-ingest": ["data data/labels changed since its last run"]}
    predicted = {row["stage"].removeprefix("loop-") for row in impact if row["reruns"]}
    repro = dvc(repo, "repro")
    ran = set(re.findall(r"Running stage 'loop-(\w+)'", repro.stdout + repro.stderr))
    assert ran == predicted  # what autodl impact said would re-run is what DVC re-ran
    assert {"ingest", "train", "select"} <= ran
    after = json.loads((repo / "reports/loop/train/metrics.json").read_text())
    assert after["train_images"] == before["train_images"] + BATCH
    manifest = (repo / "data/loop/ingest/manifest.csv").read_text().splitlines()
    header = manifest[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in manifest[1:]]
    looped = [r for r in rows if r["round"] == "1"]
    assert len(looped) == BATCH
    assert {r["annotator"] for r in looped} == {"labelstudio:oracle@example.com"}
    assert {r["confirmed"] for r in looped} == {"true"}
    assert {r["label"] for r in looped} <= {"0", "1", "2"}
    split = (repo / "data/loop/split/split.csv").read_text().splitlines()
    split_rows = [dict(zip(split[0].split(","), line.split(","), strict=True)) for line in split[1:]]
    looped_paths = {r["path"] for r in looped}
    assert {r["split"] for r in split_rows if r["path"] in looped_paths} == {"train"}
    # the original images keep their split: a round moves no validation or test image
    old = {line.split(",")[0]: line.split(",")[3] for line in test_before.splitlines()[1:]}
    assert {r["path"]: r["split"] for r in split_rows if r["path"] in old} == old
    # the next round's pool no longer offers what people labelled
    pool = (repo / "data/loop/select/pool.csv").read_text()
    assert pool.count(",labelled,") == BATCH
    next_round = json.loads((repo / "data/loop/select/labelstudio_tasks.json").read_text())
    assert not {t["data"]["autodl_path"] for t in next_round} & {t["data"]["autodl_path"] for t in tasks}
    git(repo, "add", "-A")
    diff = dvc(repo, "metrics", "diff", "--json").stdout
    assert "train_images" in diff


@pytest.mark.parametrize("strategy", ["bald", "badge", "coreset", "entropy"])
def test_every_classification_strategy_runs_a_round(round_one: tuple[Path, dict[str, str]], strategy: str) -> None:
    """Only the select stage re-runs when the strategy changes, and the round it writes follows the strategy."""
    repo, _ = round_one
    spec = repo / "specs/loop.yaml"
    spec.write_text(SPEC.replace("strategy: hybrid", f"strategy: {strategy}"))
    autodl(repo, "compile")
    try:
        assert changed_stages(repo, "loop") == {"select"}
        dvc(repo, "repro", "loop-select")
        lines = (repo / "data/loop/select/scores.csv").read_text().splitlines()
        rows = [dict(zip(lines[0].split(","), line.split(","), strict=True)) for line in lines[1:]]
        queued = [r for r in rows if r["queue_rank"]]
        assert len(queued) == BATCH
        if strategy in ("bald", "entropy"):
            values = sorted((float(r[strategy]) for r in rows), reverse=True)
            assert sorted((float(r[strategy]) for r in queued), reverse=True) == values[:BATCH]
        summary = json.loads((repo / "reports/loop/select/summary.json").read_text())
        assert summary["strategy"] == strategy
    finally:
        git(repo, "checkout", "-q", "--", "specs", "params.yaml", "dvc.yaml")


def test_the_ensemble_is_an_ood_detector_that_ships_and_serves(round_one: tuple[Path, dict[str, str]],
                                                               tmp_path: Path) -> None:
    """`dependability.ood.detector: ensemble`: members trained by the ensemble stage, their disagreement
    measured beside the other detectors, the members shipped in the promoted bundle, and the server's OOD
    score equal to the same formula computed offline from the bundle's files."""
    import shutil

    import httpx

    from runtime.ood import ensemble_score
    from tests.serving_server import running_server
    from vision.compression.onnx import predict_outputs, session
    from vision.data.dataset import load_split

    repo, _ = round_one
    clone = tmp_path / "ensemble"
    shutil.copytree(repo, clone, symlinks=True)
    spec = SPEC.replace("ood: {detector: mahalanobis", "ood: {detector: ensemble").replace(
        "  strategy: hybrid", "  strategy: ensemble\n  ensemble: {members: 3, epochs: 2}")
    (clone / "specs/loop.yaml").write_text(spec)
    autodl(clone, "compile")
    assert {"ensemble", "dependability", "select"} <= changed_stages(clone, "loop")
    dvc(clone, "repro")
    ood = json.loads((clone / "reports/loop/dependability/ood.json").read_text())
    assert ood["detector"] == "ensemble"
    assert {"msp", "energy", "mahalanobis", "knn", "vim", "ensemble"} <= set(ood["detectors"])
    bundle = clone / "models/loop/release"
    serving = json.loads((bundle / "serving.json").read_text())
    assert serving["ood"]["detector"] == "ensemble"
    assert sorted(serving["ood"]["state"]) == ["member_0", "member_1"]
    members = [np.load(bundle / path).tobytes() for _, path in sorted(serving["ood"]["state"].items())]
    split_dir = clone / "data/loop"
    test = load_split(split_dir / "ingest", split_dir / "split/split.csv", "test", ["0", "1", "2"], 16)
    logits, _ = predict_outputs(session(bundle / "model.onnx"), test.images[:4])
    member_logits = []
    for index, onnx_bytes in enumerate(members):
        (tmp_path / f"m{index}.onnx").write_bytes(onnx_bytes)
        member_logits.append(predict_outputs(session(tmp_path / f"m{index}.onnx"), test.images[:4])[0])
    expected = ensemble_score(logits, np.stack(member_logits))
    pixels = test.images[:4]
    with running_server(bundle) as server:
        body = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": list(pixels.shape),
                            "data": pixels.reshape(-1).tolist()}]}
        answer = httpx.post(f"{server.url}/v2/models/tiny/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    scores = next(o["data"] for o in answer.json()["outputs"] if o["name"] == "ood_score")
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)  # pixels in: the offline tensors exactly
