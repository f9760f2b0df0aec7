"""The data-quality gate runs a real GX checkpoint; embeddings and image flags on real pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data as skimage_data

from core.spec.data import Quality
from stages.clean import image_flags
from stages.validate import expectations, explain, quality_table
from vision.data.embedding import embed_images, embedding_model
from vision.data.quality import run_checkpoint

CLASSES = ["cat", "dog"]


def _rows(counts: dict[str, int], width: int = 16) -> list[dict[str, str]]:
    return [{"path": f"{label}/{width}-{i}.png", "label": label, "sha256": f"{label}{width}-{i}", "width": str(width),
             "height": str(width)} for label, n in counts.items() for i in range(n)]


def _run(rows: list[dict[str, str]], quality: Quality, tmp_path: Path, quarantined: int = 0):
    table = quality_table(rows, quarantined)
    checks, raw = run_checkpoint(table, expectations(quality, CLASSES), tmp_path / "docs", run_name="test")
    return table, checks, raw


def test_good_data_passes_every_check_and_writes_data_docs(tmp_path: Path) -> None:
    _, checks, raw = _run(_rows({"cat": 20, "dog": 20}), Quality(min_images_per_class=10), tmp_path)
    assert len(checks) == 9
    assert all(c.success for c in checks)
    assert raw["success"] is True
    assert (tmp_path / "docs" / "index.html").is_file()
    assert list((tmp_path / "docs" / "validations").rglob("*.html"))


def test_failures_are_explained_with_the_spec_key_to_change(tmp_path: Path) -> None:
    rows = _rows({"cat": 30, "dog": 5}) + _rows({"bird": 1}) + _rows({"dog": 1}, width=4)
    quality = Quality(min_images_per_class=10, max_class_imbalance=3.0, max_corrupt_fraction=0.05)
    table, checks, _ = _run(rows, quality, tmp_path, quarantined=4)
    failed = {c.expectation + ":" + c.kwargs.get("column", ""): explain(c, table) for c in checks if not c.success}
    assert failed["expect_column_values_to_be_in_set:label"].startswith("labels outside classes: ['bird']")
    assert failed["expect_column_min_to_be_between:class_images"] == (
        "classes below 10 images: {'bird': 1, 'dog': 6} (short by up to 9); "
        "add images or lower data.quality.min_images_per_class")
    assert failed["expect_column_max_to_be_between:imbalance_ratio"].startswith(
        "class imbalance 30.00 exceeds 3 (largest/smallest class)")
    assert failed["expect_column_values_to_be_between:width"].startswith("1 images narrower/lower than 8 px (width)")
    assert failed["expect_column_max_to_be_between:corrupt_fraction"].startswith("9.8% of files were quarantined")
    assert "expect_column_values_to_be_unique:sha256" not in failed


def test_same_data_gives_the_same_result_file_and_data_docs(tmp_path: Path) -> None:
    _, _, first = _run(_rows({"cat": 12, "dog": 12}), Quality(min_images_per_class=10), tmp_path / "a")
    _, _, second = _run(_rows({"cat": 12, "dog": 12}), Quality(min_images_per_class=10), tmp_path / "b")
    assert first == second
    pages = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.html"))
    assert len(pages) == 3
    for page in pages:
        assert (tmp_path / "a" / page).read_bytes() == (tmp_path / "b" / page).read_bytes(), page


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    coffee = Image.fromarray(skimage_data.coffee()).resize((160, 120))
    images = {
        "coffee": coffee,
        "coffee_copy": coffee.copy().rotate(1),
        "cat": Image.fromarray(skimage_data.chelsea()).resize((160, 120)),
        "dark": Image.fromarray(np.full((120, 160, 3), 6, np.uint8)),
        "blurred": Image.fromarray(skimage_data.astronaut()).resize((160, 160)).filter(ImageFilter.GaussianBlur(6)),
    }
    paths = {}
    for name, image in images.items():
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    return paths


def test_embeddings_are_unit_length_deterministic_and_meaningful(photos: dict[str, Path]) -> None:
    model = embedding_model("efficientnet_lite0_imagenet")
    files = [photos["coffee"], photos["coffee_copy"], photos["cat"]]
    vectors = embed_images(files, model, 128)
    assert vectors.shape == (3, 1280)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors, embed_images(files, model, 128))
    assert vectors[0] @ vectors[1] > 0.97 > vectors[0] @ vectors[2]  # near-copy vs a different photo


def test_image_flags_find_the_dark_image(photos: dict[str, Path]) -> None:
    names = list(photos)
    flags = image_flags([photos[n] for n in names])
    assert [names[i] for i in flags["dark"]] == ["dark"]
    assert "coffee" not in [names[i] for i in flags["low_information"]]


def _validate(root: Path, counts: dict[str, int], quality: dict[str, float], quarantined: int = 0) -> int:
    """The validate stage's CLI on an ingest of `counts` images per class and `quarantined` quarantined files."""
    import csv

    from ruamel.yaml import YAML

    from core.spec import ProjectSpec
    from stages.validate import main
    from tests.stage_runs import run_stage_as_dvc

    ingest_dir = root / "data" / "p" / "ingest"
    ingest_dir.mkdir(parents=True)
    fields = ["path", "label", "sha256", "width", "height"]
    with (ingest_dir / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(_rows(counts))
    (ingest_dir / "quarantine.csv").write_text("origin,source,reason\n" + "".join(
        f"raw/bad{i}.png,image_folder:raw,truncated file\n" for i in range(quarantined)))
    spec = ProjectSpec.model_validate({"name": "p", "classes": CLASSES, "data": {
        "sources": [{"kind": "image_folder", "path": "raw"}], "quality": quality}}, strict=False)
    with (root / "params.yaml").open("w") as handle:
        YAML(typ="safe").dump({"p": spec.model_dump(mode="json")}, handle)
    with pytest.raises(SystemExit) as exit_info:
        run_stage_as_dvc("validate", main, "p", root)
    return int(exit_info.value.code)


def test_ingest_quarantine_over_its_budget_stops_the_run_naming_the_key(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    assert _validate(tmp_path, {"cat": 12, "dog": 12}, {"min_images_per_class": 10}, quarantined=3) == 1
    err = capsys.readouterr().err
    assert "  - 11.1% of files were quarantined, more than 2.0%; see quarantine.csv, or raise " \
           "data.quality.max_corrupt_fraction" in err
    assert "Traceback" not in err


def test_validate_stage_fails_the_run_with_a_readable_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _validate(tmp_path, {"cat": 12, "dog": 3}, {"min_images_per_class": 10}) == 1
    err = capsys.readouterr().err
    assert err.startswith("stages.validate: 2 of 9 data-quality checks failed:\n")  # imbalance 4.0 == limit passes
    assert "  - classes below 10 images: {'dog': 3} (short by up to 7)" in err
    assert "Traceback" not in err
    assert (tmp_path / "reports/p/validate/summary.json").is_file()
    assert (tmp_path / "reports/p/validate/data_docs/index.html").is_file()
