"""The multi-label stages as a chain on the embedded photo mosaics: ingest, train, evaluate, compress and export
write what their contracts declare, scored by the tagger's own figures, and the bundle carries its thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.fsutil import read_csv, read_json
from core.spec import ProjectSpec
from core.spec.data import Split
from stages.runtime import StageContext, declared_params
from stages.split import assign_splits
from vision.data.photo_tags import write_dataset

TAGS = ["animal", "building", "food", "person", "plant"]
PROJECT = "scenes"


def _context(contract, root: Path, params: dict, inputs: dict[str, str]) -> StageContext:
    return StageContext(contract, PROJECT, declared_params(params, PROJECT, contract.params), root, inputs)


@pytest.mark.slow
def test_the_tagger_runs_from_ingest_to_a_bundle_with_per_tag_thresholds(tmp_path: Path) -> None:
    from core.contracts.multilabel import compress as c_compress
    from core.contracts.multilabel import dependability as c_dependability
    from core.contracts.multilabel import evaluate as c_evaluate
    from core.contracts.multilabel import export as c_export
    from core.contracts.multilabel import ingest as c_ingest
    from core.contracts.multilabel import train as c_train
    from core.contracts.multilabel import validate as c_validate
    from stages.multilabel import compress, dependability, evaluate, export, ingest, train, validate

    write_dataset(150, 64, 2, 0, tmp_path / "data" / "scenes")
    spec = ProjectSpec.model_validate({
        "name": PROJECT, "classes": TAGS,
        "data": {"sources": [{"kind": "manifest", "path": "data/scenes/manifest.csv"}],
                 "quality": {"min_images_per_class": 20}},
        "model": {"backbone": "resnet10t", "input_size_px": 32},
        "train": {"epochs": 4, "batch_size": 16, "select_by": "val_map"},
        "augment": {},  # a chain of the stages, not a test of augmentation: 22 validation images fit the temperature
        "compress": {"methods": ["quantize"], "quantization": {"qat_epochs": 0}},
        "dependability": {"robustness": {"corruptions": ["fog", "gaussian_noise"], "severities": [3]}},
    }, strict=False)
    params = {PROJECT: spec.model_dump(mode="json")}
    ingest.main(_context(c_ingest.CONTRACT, tmp_path, params, {}))
    ingest_dir = f"data/{PROJECT}/ingest"
    manifest = read_csv(tmp_path / ingest_dir / "manifest.csv")
    tag_rows = read_csv(tmp_path / ingest_dir / "tags.csv")
    assert len(manifest) == 150
    assert {r["tag"] for r in tag_rows} == set(TAGS)
    assert {r["label"] for r in manifest} <= set(TAGS) | {"_none", "_mixed"}  # each image's stratum
    ingested = {"images": ingest_dir, "manifest": f"{ingest_dir}/manifest.csv",
                "quarantine": f"{ingest_dir}/quarantine.csv", "tags": f"{ingest_dir}/tags.csv"}
    validate.main(_context(c_validate.CONTRACT, tmp_path, params, ingested))
    assert read_json(tmp_path / f"reports/{PROJECT}/validate/summary.json")["success"] is True
    splits = assign_splits([r["label"] for r in manifest], Split(), seed=0)
    (tmp_path / "split.csv").write_text("path,label,split\n" + "".join(
        f"{r['path']},{r['label']},{s}\n" for r, s in zip(manifest, splits, strict=True)))
    common = {"images": ingest_dir, "tags": f"{ingest_dir}/tags.csv", "split": "split.csv"}

    train.main(_context(c_train.CONTRACT, tmp_path, params, {**common, "manifest": f"{ingest_dir}/manifest.csv"}))
    trained = read_json(tmp_path / f"reports/{PROJECT}/train/metrics.json")
    assert trained["selected_by"] == "val_map"
    assert set(read_csv(tmp_path / f"reports/{PROJECT}/train/history.csv")[0]) >= {"val_map", "val_macro_f1"}

    with_model = {**common, "model": f"models/{PROJECT}/train"}
    evaluate.main(_context(c_evaluate.CONTRACT, tmp_path, params, with_model))
    figures = read_json(tmp_path / f"reports/{PROJECT}/evaluate/metrics.json")
    per_tag = read_json(tmp_path / f"reports/{PROJECT}/evaluate/per_class.json")
    assert figures["map"] > 0.5, figures  # five tags from four tiles of 16 px: far above a random ranking
    assert set(per_tag) == set(TAGS)
    assert all(0.0 < row["threshold"] < 1.0 for row in per_tag.values())
    assert read_csv(tmp_path / f"reports/{PROJECT}/evaluate/precision_recall.csv")

    compress.main(_context(c_compress.CONTRACT, tmp_path, params, with_model))
    variants = read_json(tmp_path / f"models/{PROJECT}/compress/variants.json")
    assert "torch_val_map" in variants["variants"]["trained"]

    export.main(_context(c_export.CONTRACT, tmp_path, params, {
        **with_model, "candidates": f"models/{PROJECT}/compress",
        "variants": f"models/{PROJECT}/compress/variants.json"}))
    bundle = read_json(tmp_path / f"models/{PROJECT}/export/preprocess.json")
    assert bundle["task"] == "multilabel"
    assert bundle["classes"] == TAGS
    assert len(bundle["thresholds"]) == len(TAGS)
    summary = read_json(tmp_path / f"reports/{PROJECT}/export/summary.json")
    assert {"val_map", "test_map", "val_map_drop"} <= set(summary)
    assert summary["variant"].endswith("int8") or summary["variant"].endswith("fp32")

    dependability.main(_context(c_dependability.CONTRACT, tmp_path, params, {
        **common, "deployable": f"models/{PROJECT}/export", "candidates": f"models/{PROJECT}/compress"}))
    measured = read_json(tmp_path / f"reports/{PROJECT}/dependability/metrics.json")
    assert measured["map"] == pytest.approx(summary["test_map"], abs=1e-6)  # the served file, read as export read it
    assert set(measured["per_tag"]) == set(TAGS)
    assert set(measured["robustness"]["families"]) == {"fog", "gaussian_noise"}
    assert 0.0 <= measured["ood"]["far_auroc"] <= 1.0
    calibration = measured["calibration"]
    assert calibration["ece_after"] <= calibration["ece_before"] + 0.02  # the fitted temperature does not hurt
    assert set(calibration["per_tag_ece_after"]) == set(TAGS)
    serving = read_json(tmp_path / f"models/{PROJECT}/dependability/serving.json")
    assert serving["temperature"] == calibration["temperature"]
    assert serving["ood"]["detector"] == measured["ood"]["detector"]


def test_a_tag_too_few_images_carry_fails_validation_with_its_name(tmp_path: Path) -> None:
    from core.contracts.multilabel import ingest as c_ingest
    from core.contracts.multilabel import validate as c_validate
    from stages.multilabel import ingest, validate
    from stages.runtime import StageFailure

    write_dataset(40, 64, 2, 1, tmp_path / "data" / "scenes", ["person", "animal"])
    spec = ProjectSpec.model_validate({
        "name": PROJECT, "classes": ["animal", "person"],
        "data": {"sources": [{"kind": "manifest", "path": "data/scenes/manifest.csv"}],
                 "quality": {"min_images_per_class": 30}}}, strict=False)
    params = {PROJECT: spec.model_dump(mode="json")}
    ingest.main(_context(c_ingest.CONTRACT, tmp_path, params, {}))
    ingest_dir = f"data/{PROJECT}/ingest"
    counts = {tag: sum(r["tag"] == tag for r in read_csv(tmp_path / ingest_dir / "tags.csv"))
              for tag in ("animal", "person")}
    assert min(counts.values()) < 30  # 40 mosaics of 4 tiles from 11 photographs: the animal is on fewer
    with pytest.raises(StageFailure, match="tags on fewer than 30 images") as failure:
        validate.main(_context(c_validate.CONTRACT, tmp_path, params, {
            "images": ingest_dir, "manifest": f"{ingest_dir}/manifest.csv",
            "quarantine": f"{ingest_dir}/quarantine.csv", "tags": f"{ingest_dir}/tags.csv"}))
    short = {tag: n for tag, n in counts.items() if n < 30}
    assert str(short) in str(failure.value)
