"""Promotion: only on a passing gate, content-addressed, and what it changes in k8s/ is what a merge serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from cli.main import main as autodl
from compiler.compile import compile_repo, drift
from core.content import digest_of_hashes, tree_digest
from runtime.bundle import bundle_members, file_hashes
from stages import promote
from tests.conftest import MINIMAL_SPEC
from tests.stage_runs import run_stage_as_dvc

FIGURES = {
    "variant": "pruned-int8", "accuracy": 0.97,
    "ood": {"detector": "energy", "threshold": -3.2, "tpr": 0.95, "far_auroc": 0.99, "far_fpr_at_95_tpr": 0.02,
            "far_accepted_fraction": 0.03,
            "near_auroc": 0.9, "sets": {}},
    "robustness": {"clean_accuracy": 0.97, "mean_ratio": 0.95, "held_out_mean_ratio": 0.9, "seen_mean_ratio": 0.97,
                   "held_out": ["gaussian_noise"], "worst": {"corruption": "fog", "severity": 3, "accuracy": 0.8},
                   "families": {}},
    "calibration": {"temperature": 1.3, "ece_before": 0.03, "ece_after": 0.01},
    "explain": {},
}


def _outputs(root: Path, passed: bool, weights: bytes = b"onnx-bytes", ood_state: bytes | None = None) -> None:
    """What the earlier stages leave for project `tiny`; the verdict judged exactly these files."""
    (root / "specs").mkdir(exist_ok=True)
    (root / "specs" / "tiny.yaml").write_text(MINIMAL_SPEC.format(name="tiny"))
    export, dependability = root / "models/tiny/export", root / "models/tiny/dependability"
    export.mkdir(parents=True, exist_ok=True)
    dependability.mkdir(parents=True, exist_ok=True)
    (export / "model.onnx").write_bytes(weights)
    (export / "preprocess.json").write_text(json.dumps({
        "variant": "pruned-int8", "precision": "int8", "target": "cpu-x86", "classes": ["0", "1", "2"],
        "input_size_px": 32, "mean": [0.5] * 3, "std": [0.5] * 3}))
    (dependability / "serving.json").write_text(json.dumps({"temperature": 1.3, "ood": {"detector": "energy"}}))
    if ood_state is not None:
        (dependability / "ood_state").mkdir(exist_ok=True)
        (dependability / "ood_state" / "mean.npy").write_bytes(ood_state)
    reports = root / "reports/tiny"
    hashes = file_hashes(bundle_members({"export": export, "dependability": dependability}))
    judged = {"files": hashes, "digest": f"sha256:{digest_of_hashes(hashes)}"}
    for path, data in {"gate/verdict.json": {"passed": passed, "checks": [{}] * 14, "variant": "pruned-int8",
                                             "judged": judged},
                       "evaluate/metrics.json": {"accuracy": 0.98, "macro_f1": 0.979, "images": 54},
                       "export/summary.json": {"params": 90_000, "macs": 9_000_000, "latency_ms_1_thread": 0.21,
                                               "speedup_vs_torch_fp32": 19.2},
                       "dependability/metrics.json": FIGURES}.items():
        (reports / path).parent.mkdir(parents=True, exist_ok=True)
        (reports / path).write_text(json.dumps(data))
    params = {"tiny": {"serving": {"storage_uri": "s3://models/autodl"}}}
    with (root / "params.yaml").open("w") as handle:
        YAML(typ="safe", pure=True).dump(params, handle)


def _promote(root: Path) -> None:
    run_stage_as_dvc("promote", promote.main, "tiny", root)


def test_a_passing_gate_promotes_by_content_address(tmp_path: Path) -> None:
    _outputs(tmp_path, passed=True)
    compile_repo(tmp_path)
    assert not (tmp_path / "k8s/tiny/base/inferenceservice.yaml").exists()  # nothing served before
    _promote(tmp_path)
    record = YAML(typ="safe").load((tmp_path / "k8s/tiny/promoted.yaml").read_text())
    digest = tree_digest(tmp_path / "models/tiny/release")
    assert record["digest"] == f"sha256:{digest}"
    assert record["storage_uri"] == f"s3://models/autodl/tiny/sha256-{digest}"
    service = YAML(typ="safe").load((tmp_path / "k8s/tiny/base/inferenceservice.yaml").read_text())
    assert service["spec"]["predictor"]["model"]["storageUri"] == record["storage_uri"]
    assert service["metadata"]["annotations"]["autodl.dev/model-digest"] == record["digest"]
    assert sorted(p.name for p in (tmp_path / "models/tiny/release").iterdir()) == [
        "model.onnx", "preprocess.json", "serving.json"]
    assert drift(tmp_path) == {}  # what promote rendered is exactly what `autodl compile --check` expects
    card = (tmp_path / "reports/tiny/model_card.md").read_text()
    assert "# Model card: tiny" in card
    assert "far-OOD AUROC 0.9900" in card
    assert "never seen in training (gaussian_noise)" in card


def test_the_same_bundle_gets_the_same_address_and_another_one_a_new(tmp_path: Path) -> None:
    _outputs(tmp_path, passed=True)
    _promote(tmp_path)
    first = (tmp_path / "k8s/tiny/promoted.yaml").read_bytes()
    _promote(tmp_path)
    assert (tmp_path / "k8s/tiny/promoted.yaml").read_bytes() == first
    _outputs(tmp_path, passed=True, weights=b"other-weights")
    _promote(tmp_path)
    assert (tmp_path / "k8s/tiny/promoted.yaml").read_bytes() != first


def _refused_after_a_promotion(root: Path, capsys, change) -> str:
    """Promote once, apply `change`, promote again: it must fail and leave k8s/ as it was; returns stderr."""
    _outputs(root, passed=True)
    _promote(root)
    before = {p: p.read_bytes() for p in (root / "k8s").rglob("*") if p.is_file()}
    change()
    with pytest.raises(SystemExit):
        _promote(root)
    assert {p: p.read_bytes() for p in (root / "k8s").rglob("*") if p.is_file()} == before
    return capsys.readouterr().err


def test_a_failed_gate_promotes_nothing_and_leaves_k8s_as_it_was(tmp_path: Path, capsys) -> None:
    err = _refused_after_a_promotion(tmp_path, capsys,
                                     lambda: _outputs(tmp_path, passed=False, weights=b"worse-weights"))
    assert "the gate did not pass for tiny: nothing is promoted" in err


def test_promote_refuses_a_bundle_that_differs_from_what_the_gate_judged(tmp_path: Path, capsys) -> None:
    err = _refused_after_a_promotion(
        tmp_path, capsys, lambda: (tmp_path / "models/tiny/export/model.onnx").write_bytes(b"weights never judged"))
    assert "the release differs from what the gate judged (model.onnx)" in err


def test_a_verdict_without_judged_files_promotes_nothing(tmp_path: Path, capsys) -> None:
    _outputs(tmp_path, passed=True)
    verdict = tmp_path / "reports/tiny/gate/verdict.json"
    verdict.write_text(json.dumps({k: v for k, v in json.loads(verdict.read_text()).items() if k != "judged"}))
    with pytest.raises(SystemExit):
        _promote(tmp_path)
    assert "records no judged files" in capsys.readouterr().err
    assert not (tmp_path / "k8s/tiny/promoted.yaml").exists()


def _lock(root: Path) -> None:
    """The dvc.lock entries `dvc repro` writes for the gate's and promote's outputs (md5 of each file)."""
    import hashlib

    def out(path: str) -> dict:
        return {"path": path, "hash": "md5", "md5": hashlib.md5((root / path).read_bytes()).hexdigest()}

    lock = {"schema": "2.0", "stages": {"tiny-gate": {"outs": [out("reports/tiny/gate/verdict.json")]},
                                        "tiny-promote": {"outs": [out("k8s/tiny/promoted.yaml")]}}}
    with (root / "dvc.lock").open("w") as handle:
        YAML(typ="safe", pure=True).dump(lock, handle)


def _check(root: Path, capsys) -> tuple[int, str]:
    code = autodl(["--root", str(root), "compile", "--check"])
    return code, capsys.readouterr().err


@pytest.fixture
def promoted(tmp_path: Path, capsys) -> Path:
    _outputs(tmp_path, passed=True)
    compile_repo(tmp_path)
    _promote(tmp_path)
    _lock(tmp_path)
    capsys.readouterr()
    return tmp_path


def test_compile_check_accepts_the_record_the_pipeline_wrote(promoted: Path, capsys) -> None:
    assert _check(promoted, capsys) == (0, "")


def test_compile_check_refuses_a_hand_edited_promotion_record(promoted: Path, capsys) -> None:
    record = promoted / "k8s/tiny/promoted.yaml"
    digest = YAML(typ="safe").load(record.read_text())["digest"]
    forged = "sha256:" + "f" * 64
    record.write_text(record.read_text().replace(digest, forged).replace(digest.removeprefix("sha256:"), "f" * 64))
    compile_repo(promoted)  # the InferenceService now points at the forged address: no drift to see
    code, err = _check(promoted, capsys)
    assert code == 1
    assert "k8s/tiny/promoted.yaml: differs from what the pipeline wrote" in err
    assert f"k8s/tiny/promoted.yaml: names {forged} but the gate judged {digest}" in err


def test_compile_check_refuses_a_record_whose_verdict_was_edited_or_failed(promoted: Path, capsys) -> None:
    verdict = promoted / "reports/tiny/gate/verdict.json"
    verdict.write_text(json.dumps({**json.loads(verdict.read_text()), "passed": False}))
    code, err = _check(promoted, capsys)
    assert code == 1
    assert "reports/tiny/gate/verdict.json: differs from what the pipeline wrote" in err
    assert "but the gate's verdict did not pass" in err
    (promoted / "dvc.lock").unlink()
    code, err = _check(promoted, capsys)
    assert code == 1
    assert "k8s/tiny/promoted.yaml: not recorded in dvc.lock" in err
