"""The cascade's gate and promote on hand-made inputs: a pair whose figures pass is promoted as one release of
exactly the judged files with both digests recorded; a model re-trained since its own gate judged it, or one
whose own gate failed, stops the pair with the reason, and nothing is promoted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from core.content import digest_of_hashes, tree_digest
from core.registry import stage_arguments, stage_named
from runtime.bundle import file_hashes
from stages.cascade import gate, promote
from stages.runtime import run_stage

OTHERS = {"cascade.detector": "boxes", "cascade.classifier": "kinds"}
PARAMS = {"pair": {
    "cascade": {"detector": "boxes", "classifier": "kinds", "baseline": None, "padding": 0.1},
    "serving": {"storage_uri": "s3://models/autodl"},
    "dependability": {"min_map": 0.5, "min_map50": 0.7, "robustness": {"max_accuracy_drop": 0.2},
                      "ood": {"max_accepted_fraction": 0.3}, "calibration": {"max_ece": 0.2}}}}


def _release(root: Path, project: str, passed: bool = True) -> None:
    release = root / "models" / project / "release"
    release.mkdir(parents=True)
    (release / "model.onnx").write_bytes(project.encode() * 10)
    (release / "preprocess.json").write_text("{}")
    verdict = {"passed": passed, "judged": {"files": file_hashes({p.name: p for p in release.iterdir()})}}
    (root / "reports" / project / "gate").mkdir(parents=True)
    (root / "reports" / project / "gate" / "verdict.json").write_text(json.dumps(verdict))


def _pair(root: Path, map_: float = 0.6, detector_passed: bool = True) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    _release(root, "boxes", detector_passed)
    _release(root, "kinds")
    (root / "models/pair/cascade").mkdir(parents=True)
    (root / "models/pair/cascade/cascade.json").write_text(json.dumps({
        "detector": "boxes", "classifier": "kinds", "classes": ["a", "b"], "padding": 0.1,
        "detector_digest": f"sha256:{tree_digest(root / 'models/boxes/release')}",
        "classifier_digest": f"sha256:{tree_digest(root / 'models/kinds/release')}"}))
    (root / "reports/pair/evaluate").mkdir(parents=True)
    (root / "reports/pair/evaluate/metrics.json").write_text(json.dumps({
        "map": map_, "map50": 0.8, "map75": 0.6, "detector_map": 0.7, "detector_map50": 0.9,
        "per_class_ap": {"a": 0.6, "b": 0.6}}))
    (root / "reports/pair/dependability").mkdir(parents=True)
    (root / "reports/pair/dependability/metrics.json").write_text(json.dumps({
        "robustness": {"families": {"fog": {"mean_map": 0.5, "drop": 0.1}}},
        "ood": {"worst_answered_fraction": 0.1, "test_answered_fraction": 0.9,
                "sets": {"noise": {"answered_fraction": 0.1, "detector_auroc": 0.9, "gated": True}}},
        "calibration": {"dece": 0.05, "detections": 12}}))


def _run(name: str, module, root: Path) -> None:
    info = stage_named(name, "cascade")
    run_stage(info, module.main, [*stage_arguments(info, "pair", others=OTHERS), "--root", str(root)])


def test_a_passing_pair_is_promoted_as_one_release_of_the_judged_files(tmp_path: Path, monkeypatch) -> None:
    _pair(tmp_path)
    _run("gate", gate, tmp_path)
    verdict = json.loads((tmp_path / "reports/pair/gate/verdict.json").read_text())
    assert verdict["passed"] is True
    assert sorted(verdict["judged"]["files"]) == ["cascade.json", "classifier/model.onnx", "classifier/preprocess.json",
                                                  "detector/model.onnx", "detector/preprocess.json"]
    monkeypatch.setattr(promote, "render_manifests", lambda root, project: "rendered")
    _run("promote", promote, tmp_path)
    release = tmp_path / "models/pair/release"
    assert (release / "detector/model.onnx").read_bytes() == b"boxes" * 10
    record = yaml.safe_load((tmp_path / "k8s/pair/promoted.yaml").read_text())
    assert record["digest"] == f"sha256:{tree_digest(release)}" == verdict["judged"]["digest"]
    assert record["digest"] == f"sha256:{digest_of_hashes(verdict['judged']['files'])}"
    assert record["detector"] == f"sha256:{tree_digest(tmp_path / 'models/boxes/release')}"
    assert "| fog | 0.5000 | 0.1000 |" in (tmp_path / "reports/pair/model_card.md").read_text()


def test_a_model_changed_since_its_own_gate_or_failing_it_stops_the_pair(tmp_path: Path, capsys) -> None:
    _pair(tmp_path, detector_passed=False)
    (tmp_path / "models/kinds/release/model.onnx").write_bytes(b"re-trained")
    with pytest.raises(SystemExit):
        _run("gate", gate, tmp_path)
    err = capsys.readouterr().err
    assert "the detector 'boxes' did not pass its own gate" in err
    assert "the release of the classifier 'kinds' is not the bundle its gate judged" in err
    assert json.loads((tmp_path / "reports/pair/gate/verdict.json").read_text())["passed"] is False
    with pytest.raises(SystemExit):
        _run("promote", promote, tmp_path)
    assert not (tmp_path / "k8s/pair/promoted.yaml").exists()


def test_an_end_to_end_figure_below_its_floor_fails_with_its_check(tmp_path: Path, capsys) -> None:
    _pair(tmp_path, map_=0.3)
    with pytest.raises(SystemExit):
        _run("gate", gate, tmp_path)
    assert "cascade mAP50-95: measured 0.3, dependability.min_map needs at least 0.5" in capsys.readouterr().err
