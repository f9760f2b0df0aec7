"""What counts as a duplicate is measured on the project's own data, and no default silently discards a data set.

The data set is texture-like, as industrial inspection images are: every image's nearest other image sits above
cosine 0.97 in the ImageNet embedder, yet no two are copies. `auto` must keep them all and still remove planted
re-encoded copies; the old fixed 0.97 must stop the pipeline at clean, with the figures and the key, before any
later stage runs. And the data stages' outputs must not move when the embeddings pick up float noise of 1e-6, as
they do between CPU makes.
"""

from __future__ import annotations

import io
import json
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ruamel.yaml import YAML
from scipy.ndimage import gaussian_filter

from ops.workspace import copy_project_code
from tests.conftest import git
from tests.e2e.helpers import autodl, dvc, run

pytestmark = pytest.mark.slow

CLASSES = ("weave", "twill", "rib")
PER_CLASS = 16
PLANTED = 3
SPEC = """\
name: tex
seed: 3
classes: [weave, twill, rib]
data:
  sources:
    - {kind: image_folder, path: raw}
  quality: {min_images_per_class: 10, min_size_px: [32, 32]}
  embedding: {input_size_px: 160}
  pruning: {budget: 0.5}
"""


def texture(seed: int, kind: int, size: int = 160) -> np.ndarray:
    """A grating of the class's orientation, random phase, under smooth noise: one material, many samples."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(float)
    theta = rng.uniform(-0.05, 0.05) + kind * 0.5
    wave = np.sin(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / 9.0 + rng.uniform(0, 2 * np.pi))
    noise = gaussian_filter(rng.normal(size=(size, size)), 1.0)
    image = wave + noise / noise.std()
    return np.clip(128 + 35 * image / image.std(), 0, 255).astype(np.uint8)


def _embed(images: list[np.ndarray], size: int = 160) -> np.ndarray:
    from vision.data.embedding import embed_pixels, embedding_model

    pixels = np.stack([np.array(Image.fromarray(a).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
                       for a in images])
    return embed_pixels(iter([pixels]), len(pixels), embedding_model("efficientnet_lite0_imagenet")).astype(float)


def texture_set() -> dict[str, list[np.ndarray]]:
    """PER_CLASS textures per class such that every image's nearest other image is above cosine 0.97."""
    candidates = [(CLASSES[i % 3], texture(i, i % 3)) for i in range(3 * (PER_CLASS + 10))]
    similarity = (lambda v: v @ v.T)(_embed([image for _, image in candidates]))
    np.fill_diagonal(similarity, -1.0)
    alive = np.ones(len(candidates), dtype=bool)
    while True:  # the first PER_CLASS of each class still alive; drop the loneliest until all have a near neighbour
        taken = {name: [i for i in np.flatnonzero(alive) if candidates[i][0] == name][:PER_CLASS] for name in CLASSES}
        assert all(len(rows) == PER_CLASS for rows in taken.values()), "too few textures with a near neighbour"
        rows = np.array(sorted(i for chosen in taken.values() for i in chosen))
        nearest = similarity[np.ix_(rows, rows)].max(axis=1)
        if nearest.min() > 0.975:
            return {name: [candidates[i][1] for i in chosen] for name, chosen in taken.items()}
        alive[rows[int(np.argmin(nearest))]] = False


def _jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def texture_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("textures")
    copy_project_code(repo)
    for label, images in texture_set().items():
        (repo / "raw" / label).mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(repo / "raw" / label / f"{label}_{i:02d}.png")
        for i in range(PLANTED if label == CLASSES[0] else 0):  # re-encoded copies: real duplicates
            (repo / "raw" / label / f"{label}_{i:02d}_copy.jpg").write_bytes(_jpeg(images[i]))
    (repo / "specs").mkdir()
    (repo / "specs" / "tex.yaml").write_text(SPEC)
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    autodl(repo, "compile")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "textures")
    return repo


def _nearest_other(repo: Path) -> np.ndarray:
    from vision.data.vectors import load_embeddings, similarity

    vectors, _ = load_embeddings(repo / "data" / "tex" / "embed")
    found = similarity(vectors, vectors)
    np.fill_diagonal(found, -1.0)
    return found.max(axis=1)


def test_auto_keeps_every_texture_and_removes_the_planted_copies(texture_repo: Path) -> None:
    dvc(texture_repo, "repro", "tex-split")
    manifest = (texture_repo / "data" / "tex" / "ingest" / "manifest.csv").read_text().splitlines()
    originals = [line for line in manifest[1:] if "_copy" not in line.split(",")[3]]
    assert len(manifest) - 1 == 3 * PER_CLASS + PLANTED
    assert _nearest_other(texture_repo).min() > 0.97  # the data set is what the test says it is
    summary = json.loads((texture_repo / "reports" / "tex" / "clean" / "summary.json").read_text())
    report = json.loads((texture_repo / "reports" / "tex" / "clean" / "report.json").read_text())
    assert summary["threshold_mode"] == "auto"
    assert summary["threshold"] > 0.98
    assert summary["near_duplicates_removed"] == PLANTED
    assert summary["images_out"] == len(originals) == 3 * PER_CLASS
    origins = {line.split(",")[0]: line.split(",")[3] for line in manifest[1:]}
    assert all("_copy" in origins[d["dropped"]] or "_copy" in origins[d["kept"]] for d in report["near_duplicates"])
    assert report["separable"]["reencoded"] is True
    curves = (texture_repo / "reports" / "tex" / "clean" / "similarity.csv").read_text().splitlines()
    assert curves[0].split(",") == ["share", "nearest_neighbour", "copy_reencoded", "copy_resized", "copy_cropped",
                                    "threshold"]
    assert (texture_repo / "reports" / "tex" / "clean" / "similarity.png").stat().st_size > 10_000


def test_a_fixed_097_stops_at_clean_with_the_figures_and_the_key(texture_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "fixed"
    shutil.copytree(texture_repo, repo, symlinks=True)
    for stage in ("clean", "split", "prune"):  # as before their first run (another test may have run them)
        for folder in (repo / "data" / "tex" / stage, repo / "reports" / "tex" / stage):
            shutil.rmtree(folder, ignore_errors=True)
    spec = repo / "specs" / "tex.yaml"
    spec.write_text(SPEC.replace("  quality:", "  cleaning: {near_duplicate_cosine: 0.97}\n  quality:"))
    autodl(repo, "compile")
    done = run(repo, sys.executable, "-m", "dvc", "repro", "tex-prune", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "data loss budget exceeded, nothing written" in output
    assert "data.quality.max_removed_fraction 10.0%" in output
    assert "raise data.cleaning.near_duplicate_cosine" in output
    assert (repo / "reports" / "tex" / "clean" / "breach.png").stat().st_size > 10_000
    for absent in ("data/tex/clean", "reports/tex/clean/summary.json", "data/tex/split", "data/tex/prune"):
        assert not (repo / absent).exists(), absent


def test_data_stage_outputs_do_not_move_with_float_noise_in_the_embeddings(texture_repo: Path,
                                                                           tmp_path: Path) -> None:
    """Noise of 1e-6 on the embedder's raw output (another CPU make): the snapped vectors may differ in a few
    elements, and clean, split and prune must still write the same bytes."""
    from vision.data.vectors import GRID, snap

    dvc(texture_repo, "repro", "tex-prune")
    repo = tmp_path / "noisy"
    shutil.copytree(texture_repo, repo, symlinks=True)
    stored = repo / "data" / "tex" / "embed" / "embeddings.npy"
    vectors = np.load(stored)
    rng = np.random.default_rng(0)
    raw = vectors + rng.uniform(-GRID / 2, GRID / 2, size=vectors.shape)  # a raw output that snaps to `vectors`
    noisy = snap(raw + rng.uniform(-1e-6, 1e-6, size=vectors.shape))
    assert np.count_nonzero(noisy != vectors) > 0  # the noise did reach the stored values
    stored.unlink()
    np.save(stored, noisy, allow_pickle=False)
    copies_file = repo / "data" / "tex" / "embed" / "copies.json"
    copies = json.loads(copies_file.read_text())
    copies["similarity"] = {name: (np.array(values) + rng.uniform(-1e-6, 1e-6, len(values))).tolist()
                            for name, values in copies["similarity"].items()}
    copies_file.unlink()
    copies_file.write_text(json.dumps(copies))
    # what later stages read and the decisions' figures; the reports' measured similarities may move in their
    # last digits, as the embeddings did
    outputs = ("data/tex/clean/manifest.csv", "data/tex/clean/duplicate_rule.json", "reports/tex/clean/summary.json",
               "data/tex/split/split.csv", "reports/tex/split/summary.json", "data/tex/prune/split.csv",
               "reports/tex/prune/summary.json")
    for path in (*outputs, "reports/tex/clean/report.json", "reports/tex/prune/projection.csv"):
        (repo / path).unlink()
    commands = YAML(typ="safe").load((repo / "dvc.yaml").read_text())["stages"]
    for stage in ("clean", "split", "prune"):  # each as dvc.yaml runs it: its inputs' paths on the command line
        program, *arguments = shlex.split(commands[f"tex-{stage}"]["cmd"])
        assert program == "python"
        run(repo, sys.executable, *arguments)
    for path in outputs:
        assert (repo / path).read_bytes() == (texture_repo / path).read_bytes(), path
