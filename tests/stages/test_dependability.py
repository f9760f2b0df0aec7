"""Dependability and the gate on real tiny models: a trained one passes, a barely trained one is refused."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from ruamel.yaml import YAML

from core.fsutil import write_json
from core.spec.deployment import CompressionBudget, DependabilitySection
from core.spec.training import AugmentSection
from runtime.bundle import PREPROCESS_FILE, Preprocessing
from stages import dependability, gate
from stages.assessing import Plan
from tests.conftest import TINY_CLASSES, tiny_resnet, tiny_split_data
from tests.stage_runs import run_stage_as_dvc
from vision.compression.candidates import save_candidate
from vision.compression.onnx import export_onnx, predict, predict_outputs, session
from vision.data.dataset import Splits, to_tensor
from vision.dependability.figures import robustness_heatmap
from vision.dependability.ood import FeatureDetector
from vision.dependability.report import FIGURES, render_html, render_markdown
from vision.dependability.verdict import Thresholds, dependability_checks, verdict
from vision.training.model import ModelConfig, build_model

pytestmark = pytest.mark.slow
SIZE = 16
PLAN = Plan("vim", ["fog", "gaussian_noise"], [1, 3], gradcam_samples=6, trained_on={"fog"})


@pytest.fixture(scope="module")
def splits(tiny_digits: Path):
    return tiny_split_data(tiny_digits, SIZE)


def _deploy(model: torch.nn.Module, folder: Path) -> Path:
    """What compress and export leave behind: the candidate's torch form and the deployable ONNX file."""
    folder.mkdir(parents=True, exist_ok=True)
    save_candidate(model, ModelConfig("resnet10t", TINY_CLASSES, SIZE), [], folder, "trained")
    export_onnx(model, SIZE, folder / "model.onnx")
    return folder / "model.onnx"


@pytest.fixture(scope="module")
def trained(splits) -> torch.nn.Module:
    train, val, _ = splits
    return tiny_resnet(train, val, SIZE, epochs=8).eval()


@pytest.fixture(scope="module")
def weak(splits) -> torch.nn.Module:
    """Trained one optimiser step: the deliberately weak model the gate must refuse."""
    train, _, _ = splits
    torch.manual_seed(0)
    model = build_model(ModelConfig("resnet10t", TINY_CLASSES, SIZE)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(to_tensor(train.images[:16])), torch.from_numpy(train.labels[:16]))
    loss.backward()
    optimizer.step()
    return model.eval()


def _assess(model: torch.nn.Module, splits, folder: Path,
            plan: Plan = PLAN) -> dependability.Assessment:
    return dependability.assess(_deploy(model, folder), model, Splits(*splits), plan, seed=0, extra_ood={})


LIMITS = Thresholds(min_accuracy=0.85, min_auroc=0.85, max_accepted_fraction=0.3, max_accuracy_drop=0.5,
                    max_ece=0.35)


def test_a_trained_model_is_measured_on_its_onnx_file_and_passes(trained, splits, tmp_path: Path) -> None:
    _, _, test = splits
    result = _assess(trained, splits, tmp_path)
    onnx_accuracy = float((predict(session(tmp_path / "model.onnx"), test.images).argmax(1) == test.labels).mean())
    assert result.accuracy == pytest.approx(onnx_accuracy)
    figures = dependability.metrics(result, "trained-fp32", TINY_CLASSES)
    assert set(figures["ood"]["sets"]) == {"photos", "noise", "shuffled_patches", "occlusion"}
    recall = figures["recall_by_class"]
    assert list(recall) == TINY_CLASSES
    per_class = [float(np.mean(result.predicted[test.labels == c] == c)) for c in range(len(TINY_CLASSES))]
    assert list(recall.values()) == pytest.approx(per_class, abs=1e-6)
    assert set(result.ood.table) == {"msp", "energy", "max_logit", "mahalanobis", "knn", "vim"}
    families = figures["robustness"]["families"]
    assert families["fog"]["seen_in_training"]
    assert not families["gaussian_noise"]["seen_in_training"]
    assert figures["robustness"]["held_out"] == ["gaussian_noise"]
    assert len(result.corruptions) == 4
    assert result.calibration.temperature > 0
    assert result.explanations.maps.shape == (len(result.explained), SIZE, SIZE)
    checks = {c.name: c for c in dependability_checks(figures, _ood_report(result), LIMITS)}
    assert checks["accuracy"].passed, checks["accuracy"].line()
    assert checks["ood_auroc"].passed, checks["ood_auroc"].line()


def test_a_model_trained_one_step_fails_the_gate_for_accuracy_and_ood(weak, splits, tmp_path: Path) -> None:
    # energy reads the logits, which a barely trained model cannot make confident on anything
    result = _assess(weak, splits, tmp_path, dataclasses.replace(PLAN, detector="energy"))
    figures = dependability.metrics(result, "trained-fp32")
    failed = {c.name: c for c in dependability_checks(figures, _ood_report(result), LIMITS) if not c.passed}
    assert {"accuracy", "ood_auroc"} <= set(failed), sorted(failed)
    assert failed["accuracy"].line().startswith(f"accuracy: measured {result.accuracy:g}, dependability.min_accuracy "
                                                "needs at least 0.85")


def test_the_serving_threshold_accepts_95_percent_of_validation_images(trained, splits, tmp_path: Path) -> None:
    _, val, _ = splits
    result = _assess(trained, splits, tmp_path)
    _, features = predict_outputs(session(tmp_path / "model.onnx"), val.images)
    detector = FeatureDetector("vim", weight=trained.get_classifier().weight.detach().numpy(),
                               bias=trained.get_classifier().bias.detach().numpy())
    train, _, _ = splits
    detector.fit(predict_outputs(session(tmp_path / "model.onnx"), train.images)[1], train.labels)
    val_scores = detector.score(features)
    assert np.mean(val_scores <= result.ood.threshold) >= 0.95
    assert np.mean(val_scores < result.ood.threshold) < 0.95 or result.ood.threshold == val_scores.min()


def test_nothing_to_corrupt_or_explain_still_gives_a_report(trained, splits, tmp_path: Path) -> None:
    plan = dataclasses.replace(PLAN, corruptions=[], gradcam_samples=0)
    result = _assess(trained, splits, tmp_path, plan)
    figures = dependability.metrics(result, "trained-fp32")
    assert figures["robustness"]["mean_ratio"] is None
    assert figures["explain"]["samples"] == 0
    checks = dependability_checks(figures, _ood_report(result), LIMITS)
    assert [c.name for c in checks] == ["accuracy", "ood_auroc", "ood_accepted_fraction", "calibration_ece"]
    images = {}
    for name in FIGURES:
        images[name] = tmp_path / f"{name}.png"
    robustness_heatmap(result.clean_accuracy, result.corruptions, images["robustness"], "none")
    for name in ("reliability", "ood_scores", "gradcam"):
        shutil.copy(images["robustness"], images[name])
    ood = result.ood.record([])
    result_verdict = verdict("p", "trained-fp32", checks)
    assert "Grad-CAM is off" in render_html("p", result_verdict, checks, figures, ood, images)
    assert "- No corruption checked" in render_markdown("p", result_verdict, checks, figures)


def _ood_report(result: dependability.Assessment) -> dict:
    return result.ood.record([])


def _stage_repo(root: Path, tiny_digits: Path, model: torch.nn.Module, dependability_spec: dict) -> None:
    """A repository holding what the earlier stages leave for `p`, and the params the two stages declare."""
    shutil.copytree(tiny_digits / "ingest", root / "data/p/ingest")
    (root / "data/p/prune").mkdir(parents=True)
    shutil.copy(tiny_digits / "split.csv", root / "data/p/prune/split.csv")
    compress_dir, export_dir = root / "models/p/compress", root / "models/p/export"
    _deploy(model, compress_dir)
    export_dir.mkdir(parents=True)
    shutil.move(compress_dir / "model.onnx", export_dir / "model.onnx")
    write_json(export_dir / PREPROCESS_FILE, Preprocessing(SIZE, [0.5] * 3, [0.5] * 3, TINY_CLASSES,
                                                           variant="trained-fp32").to_dict())
    write_json(root / "reports/p/export/summary.json", {"params": 1000, "macs": 10_000, "latency_ms_1_thread": 0.1,
                                                        "val_accuracy_drop": 0.0})
    _write_params(root, dependability_spec)


def _write_params(root: Path, dependability_spec: dict, max_params: int = 2000) -> None:
    params = {"p": {"seed": 0, "augment": AugmentSection(fog=0.2).model_dump(mode="json"), "active_learning": None,
                    "dependability": dependability_spec,
                    "compress": {"budget": CompressionBudget(max_params=max_params).model_dump(mode="json")}}}
    with (root / "params.yaml").open("w") as handle:
        YAML(typ="safe", pure=True).dump(params, handle)


def _spec(detector: str = "vim", **thresholds: float) -> dict:
    spec = DependabilitySection(robustness={"corruptions": ["fog", "gaussian_noise"], "severities": [1, 3],
                                            "max_accuracy_drop": 0.5},
                                explain={"gradcam_samples": 6}).model_dump(mode="json")
    spec.update(min_accuracy=thresholds.get("min_accuracy", 0.85))
    spec["ood"].update(min_auroc=0.85, max_accepted_fraction=0.5, detector=detector)
    spec["calibration"]["max_ece"] = 0.35
    return spec


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.sources.append(values.get("src") or "")
        if tag in ("link", "script") and (values.get("href") or values.get("src")):
            self.links.append(tag)


def test_the_stages_write_a_self_contained_report_and_the_gate_passes(trained, tiny_digits: Path,
                                                                       tmp_path: Path, capsys) -> None:
    _stage_repo(tmp_path, tiny_digits, trained, _spec())
    run_stage_as_dvc("dependability", dependability.main, "p", tmp_path)
    run_stage_as_dvc("gate", gate.main, "p", tmp_path)
    assert "gate: all 8 checks passed for p (trained-fp32)" in capsys.readouterr().out
    serving = json.loads((tmp_path / "models/p/dependability/serving.json").read_text())
    assert serving["temperature"] > 0
    assert serving["ood"]["detector"] == "vim"
    folder = tmp_path / "models/p/dependability"
    state = {name: np.load(folder / path) for name, path in serving["ood"]["state"].items()}
    assert set(state) == {"u", "principal_subspace", "alpha", "w", "b"}  # what the server needs to score ViM
    assert state["w"].shape == (len(TINY_CLASSES), trained.num_features)
    verdict = json.loads((tmp_path / "reports/p/gate/verdict.json").read_text())
    assert verdict["passed"]
    assert len(verdict["checks"]) == 8
    html = (tmp_path / "reports/p/dependability.html").read_text()
    assert "<h2>Per-class recall</h2>" in html
    parser = _Images()
    parser.feed(html)
    assert len(parser.sources) == 4
    assert not parser.links
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "gate passed" in (tmp_path / "reports/p/gate/summary.md").read_text()
    rows = (tmp_path / "reports/p/dependability/robustness.csv").read_text().splitlines()
    assert rows[0] == "condition,accuracy,seen_in_training"
    assert len(rows) == 1 + 4 + 1


def test_a_failing_gate_exits_non_zero_with_one_line_per_failed_check(trained, tiny_digits: Path, tmp_path: Path,
                                                                      capsys) -> None:
    _stage_repo(tmp_path, tiny_digits, trained, _spec("auto"))
    run_stage_as_dvc("dependability", dependability.main, "p", tmp_path)
    # detector auto: the choice, why, and on which sets, is recorded and serving uses it
    choice = json.loads((tmp_path / "reports/p/dependability/ood.json").read_text())["choice"]
    assert "detector auto -> " + choice["reason"] in capsys.readouterr().out
    assert choice["reason"].endswith("Chosen on validation-only sets, never the sets the gate reports.")
    assert set(choice["standings"]) == {"msp", "energy", "max_logit", "mahalanobis", "knn", "vim"}
    serving = json.loads((tmp_path / "models/p/dependability/serving.json").read_text())
    assert serving["ood"]["detector"] == choice["detector"]
    # One parameter over the budget: the export summary the stages read says 1,000 (a threshold on a measured
    # figure could be out of any spec's range: this tiny model can be perfect on its test split).
    _write_params(tmp_path, _spec("auto"), max_params=999)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_code:
        run_stage_as_dvc("gate", gate.main, "p", tmp_path)
    assert exit_code.value.code == 1
    err = capsys.readouterr().err
    assert "gate: 1 of 8 checks failed for p (trained-fp32); nothing will be promoted" in err
    assert ("  - budget.params: measured 1000, compress.budget.max_params needs at most 999 (short by 1); "
            "relax compress.budget.max_params") in err
    verdict = json.loads((tmp_path / "reports/p/gate/verdict.json").read_text())
    assert verdict["passed"] is False
    assert verdict["failed"] == ["budget.params"]
    html = (tmp_path / "reports/p/dependability.html").read_text()
    assert "GATE FAILED" in html
    assert "Chosen by <code>detector: auto</code>: " + choice["detector"] in html
