"""End to end with the real tools: compile, `dvc repro`, then edit the spec and ask DVC what changed.

Fine-grained invalidation is a core promise: a spec edit must invalidate exactly
the stages that read the edited key (as reported by real `dvc status`), and
`autodl impact` must predict the same stages plus their downstream, which a
real `dvc repro` then re-runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from ruamel.yaml import YAML
from skimage import data as skimage_data

from core.fsutil import read_csv
from core.registry import STAGES
from ops.workspace import copy_project_code
from tests.browser import assert_project_reports_render_offline
from tests.conftest import git
from tests.e2e.helpers import autodl as _autodl
from tests.e2e.helpers import changed_stages
from tests.e2e.helpers import dvc as _dvc
from tests.e2e.helpers import env as _env
from tests.e2e.helpers import run as _run

pytestmark = pytest.mark.slow

SPEC = """\
name: e2e
seed: 1
classes: ["0", "1", "2"]
data:
  sources:
    - {kind: sklearn_digits, max_images_per_class: 30}
  split: {train: 0.6, val: 0.2, test: 0.2}
  quality: {min_images_per_class: 10}
  embedding: {input_size_px: 64}
augment: {occlusion: 0.3, low_light: 0.2}
compress: {budget: {max_params: 600000, max_accuracy_drop: 0.3}, prune_steps: 2, finetune_epochs: 1}
model: {backbone: resnet10t, input_size_px: 16}
dependability: {min_accuracy: 0.5, ood: {detector: mahalanobis, min_auroc: 0.0, max_accepted_fraction: 1.0},
                explain: {gradcam_samples: 4},
                robustness: {corruptions: [fog, gaussian_noise], severities: [1, 3], max_accuracy_drop: 0.6},
                calibration: {max_ece: 0.6}}
train: {epochs: 6, batch_size: 16,
        hpo: {trials: 2, sampler: random, epochs_per_trial: 2, space: {lr: {low: 1.0e-3, high: 1.0e-2, log: true}}}}
"""

# (spec edit as `old -> new` text, stages whose params it changes). Written out by hand on purpose:
# the expectation must not be derived from the registry it is testing.
EDITS: dict[str, tuple[tuple[str, str], set[str]]] = {
    "serving.max_replicas": (("train: {", "serving: {max_replicas: 9}\ntrain: {"), set()),
    "serving.storage_uri": (("train: {", "serving: {storage_uri: 's3://elsewhere/models'}\ntrain: {"), {"promote"}),
    "compress.budget.max_params": (("max_params: 600000", "max_params: 500000"), {"compress", "export", "gate"}),
    "compress.methods": (("prune_steps: 2", "prune_steps: 2, methods: [structured_prune, quantize]"),
                         {"compress", "export"}),
    "compress.importance": (("prune_steps: 2", "prune_steps: 2, importance: lamp"), {"compress"}),
    "compress.prune_steps": (("prune_steps: 2", "prune_steps: 3"), {"compress"}),
    "compress.max_prune_ratio": (("prune_steps: 2", "prune_steps: 2, max_prune_ratio: 0.8"), {"compress"}),
    "compress.finetune_epochs": (("finetune_epochs: 1", "finetune_epochs: 2"), {"compress"}),
    "compress.distillation": (("finetune_epochs: 1", "finetune_epochs: 1, distillation: {alpha: 0.5}"),
                              {"compress"}),
    "compress.student": (("finetune_epochs: 1", "finetune_epochs: 1, student: resnet10t"), {"compress"}),
    "compress.calibration_images": (("finetune_epochs: 1", "finetune_epochs: 1, calibration_images: 150"),
                                    {"compress", "export"}),
    "compress.allocation": (("finetune_epochs: 1", "finetune_epochs: 1, allocation: global"), {"compress"}),
    "compress.finetune_min_steps": (("finetune_epochs: 1", "finetune_epochs: 1, finetune_min_steps: 20"),
                                    {"compress"}),
    "compress.sparse_training": (("finetune_epochs: 1", "finetune_epochs: 1, sparse_training: {epochs: 2}"),
                                 {"compress"}),
    "compress.quantization": (("finetune_epochs: 1", "finetune_epochs: 1, quantization: {max_fp32_layers: 2}"),
                              {"compress", "export"}),
    # the target and its latency budget size a `model: auto` (core.model_choice), so train reads them too
    "target.hardware": (("train: {", "target: {hardware: nvidia-t4}\ntrain: {"), {"train", "compress", "export"}),
    "compress.budget.max_latency_ms": (("max_params: 600000", "max_params: 600000, max_latency_ms: 500"),
                                       {"train", "compress", "export", "gate"}),
    "dependability.min_accuracy": (("min_accuracy: 0.5", "min_accuracy: 0.55"), {"gate"}),
    # a classifier gated on every class's recall keeps its epochs by it (train.select_by: auto)
    "dependability.min_class_recall": (("min_accuracy: 0.5", "min_accuracy: 0.5, min_class_recall: 0.1"),
                                       {"train", "compress", "gate"}),
    "dependability.ood.min_auroc": (("min_auroc: 0.0", "min_auroc: 0.05"), {"gate"}),
    "dependability.ood.detector": (("detector: mahalanobis", "detector: knn"), {"dependability"}),
    "dependability.ood.max_accepted_fraction": (("max_accepted_fraction: 1.0", "max_accepted_fraction: 0.99"),
                                                {"gate"}),
    "dependability.ood.ood_sources": (("detector: mahalanobis", "detector: mahalanobis, ood_sources: [ood]"),
                                      {"dependability"}),
    "dependability.robustness.corruptions": (("[fog, gaussian_noise]", "[fog]"), {"dependability"}),
    "dependability.robustness.severities": (("severities: [1, 3]", "severities: [1, 2]"), {"dependability"}),
    "dependability.robustness.max_accuracy_drop": (("max_accuracy_drop: 0.6", "max_accuracy_drop: 0.65"), {"gate"}),
    "dependability.calibration": (("max_ece: 0.6", "max_ece: 0.65"), {"gate"}),
    "dependability.explain": (("gradcam_samples: 4", "gradcam_samples: 6"), {"dependability"}),
    "data.sources": (("max_images_per_class: 30", "max_images_per_class: 29"), {"ingest"}),
    "data.cleaning.static_frame_flow_px": (("  quality:", "  cleaning: {static_frame_flow_px: 1.0}\n  quality:"),
                                           {"ingest"}),
    "data.quality.min_size_px": (("min_images_per_class: 10}", "min_images_per_class: 10, min_size_px: [4, 4]}"),
                                 {"ingest", "validate"}),
    "data.quality.min_images_per_class": (("min_images_per_class: 10}", "min_images_per_class: 9}"), {"validate"}),
    "data.quality.max_image_pixels": (("min_images_per_class: 10}",
                                       "min_images_per_class: 10, max_image_pixels: 9000}"), {"ingest", "validate"}),
    "classes": (('["0", "1", "2"]', '["0", "1", "2", "3"]'), {"ingest", "validate", "train"}),
    "data.embedding": (("input_size_px: 64}", "input_size_px: 48}"), {"embed"}),
    "data.cleaning.near_duplicate_cosine": (("  quality:", "  cleaning: {near_duplicate_cosine: 0.99}\n  quality:"),
                                            {"clean"}),
    "data.quality.max_removed_fraction": (("quality: {", "quality: {max_removed_fraction: 0.2, "),
                                          {"validate", "clean"}),
    "data.quality.max_conflicting_duplicates": (("quality: {", "quality: {max_conflicting_duplicates: 0.2, "),
                                                {"validate", "clean"}),
    "data.cleaning.remove_flagged": (("  quality:", "  cleaning: {remove_flagged: [dark]}\n  quality:"), {"clean"}),
    "data.split": (("val: 0.2, test: 0.2", "val: 0.25, test: 0.15"), {"split"}),
    "data.pruning.budget": (("  quality:", "  pruning: {budget: 0.5}\n  quality:"), {"prune"}),
    "seed": (("seed: 1", "seed: 2"), {"split", "prune", "train", "compress", "dependability"}),
    "model.input_size_px": (("input_size_px: 16", "input_size_px: 24"), {"train"}),
    "train.epochs": (("epochs: 6", "epochs: 5"), {"train", "compress"}),
    "train.batch_size": (("batch_size: 16", "batch_size: 8"), {"train", "compress"}),
    "train.optimizer.weight_decay": (("batch_size: 16", "batch_size: 16, optimizer: {weight_decay: 0.001}"),
                                     {"train", "compress"}),
    "train.scheduler.name": (("batch_size: 16", "batch_size: 16, scheduler: {name: step}"), {"train", "compress"}),
    "train.label_smoothing": (("batch_size: 16", "batch_size: 16, label_smoothing: 0.1"), {"train", "compress"}),
    "train.hpo.trials": (("trials: 2", "trials: 3"), {"train"}),
    "train.select_by": (("batch_size: 16", "batch_size: 16, select_by: val_macro_f1"), {"train", "compress"}),
    "train.balance": (("batch_size: 16", "batch_size: 16, balance: sampler"), {"train", "compress"}),
    "augment.occlusion": (("occlusion: 0.3", "occlusion: 0.4"), {"train", "compress", "dependability"}),
    # the data loop: its ensemble is read by dependability (the `ensemble` OOD detector); the loop's own stages
    # are new, so they never ran
    "active_learning.ensemble": (("train: {", "active_learning: {pool: [{kind: images, path: ood}], ensemble: "
                                 "{members: 2}}\ntrain: {"), {"ensemble", "dependability", "select"}),
}


def _new_project(repo: Path, spec: str) -> None:
    """A new repository with the project's code and one spec, compiled, before any `dvc repro`."""
    copy_project_code(repo)
    (repo / "specs").mkdir()
    (repo / "specs" / "e2e.yaml").write_text(spec)
    (repo / "ood").mkdir()  # an out-of-distribution folder for the ood_sources edit
    Image.fromarray(skimage_data.astronaut()).save(repo / "ood" / "astronaut.png")
    git(repo, "init", "-q")
    _dvc(repo, "init", "-q")
    _dvc(repo, "config", "plots.html_template", "offline-plots.html")  # as `autodl compile` advises
    _autodl(repo, "compile")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh repository after `autodl compile` and a full `dvc repro`, everything committed."""
    repo = tmp_path_factory.mktemp("e2e")
    _new_project(repo, SPEC)
    repro = _dvc(repo, "repro")
    (repo / "repro.log").write_text(repro.stdout + repro.stderr)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first run")
    return repo


def _changed_stages(repo: Path) -> set[str]:
    return changed_stages(repo, "e2e")


def _with_edit(repo: Path, old: str, new: str) -> None:
    spec = repo / "specs" / "e2e.yaml"
    assert old in SPEC, old
    spec.write_text(SPEC.replace(old, new, 1))
    _autodl(repo, "compile")


def _restore(repo: Path) -> None:
    git(repo, "checkout", "-q", "--", "specs", "params.yaml", "dvc.yaml")


def test_repro_runs_every_stage_and_reports_accuracy(pipeline: Path) -> None:
    log = (pipeline / "repro.log").read_text()
    assert re.findall(r"Running stage 'e2e-(\w+)'", log) == [s.name for s in STAGES]
    metrics = json.loads((pipeline / "reports/e2e/evaluate/metrics.json").read_text())
    split = json.loads((pipeline / "reports/e2e/split/summary.json").read_text())
    assert split["cross_split_near_duplicates"] == 0
    assert metrics["images"] == split["test"]
    assert json.loads((pipeline / "reports/e2e/validate/summary.json").read_text())["success"] is True
    assert (pipeline / "reports/e2e/validate/data_docs/index.html").is_file()
    assert (pipeline / "reports/e2e/prune/projection.png").is_file()
    assert metrics["accuracy"] > 0.6, metrics  # three digits: chance is 0.33
    confusion = (pipeline / "reports/e2e/evaluate/confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted"
    assert len(confusion) == 1 + metrics["images"]
    assert (pipeline / "models/e2e/train/model.safetensors").is_file()
    per_class = json.loads((pipeline / "reports/e2e/evaluate/per_class.json").read_text())
    assert set(per_class) == {"0", "1", "2"}
    assert sum(row["support"] for row in per_class.values()) == metrics["images"]
    assert "evaluate: e2e test accuracy" in log
    assert "train: hyperparameter search ran 2 new trial(s)" in log
    trials = (pipeline / "reports/e2e/train/hpo/trials.csv").read_text().splitlines()
    assert trials[0] == "number,state,val_accuracy,epochs,lr"
    assert len(trials) == 3
    for report in ("train/augmentations.png", "train/hpo/optimization_history.png", "train/hpo/param_importances.png",
                   "evaluate/misclassified.png"):
        assert (pipeline / "reports/e2e" / report).read_bytes()[:4] == b"\x89PNG", report
    assert isinstance(json.loads((pipeline / "reports/e2e/evaluate/top_confusions.json").read_text()), list)
    deployable = json.loads((pipeline / "models/e2e/export/preprocess.json").read_text())
    assert deployable["classes"] == ["0", "1", "2"]
    assert deployable["input_size_px"] == 16
    assert (pipeline / "models/e2e/export/model.onnx").is_file()
    choice = json.loads((pipeline / "reports/e2e/export/choice.json").read_text())
    assert choice["chosen"] == deployable["variant"]
    exported = json.loads((pipeline / "reports/e2e/export/summary.json").read_text())
    assert exported["params"] <= 600000
    plots = json.loads(_dvc(pipeline, "plots", "show", "--json").stdout)["data"]
    assert {"e2e-train-accuracy", "e2e-train-loss", "e2e-evaluate-confusion", "e2e-prune-projection",
            "e2e-dependability-robustness", "e2e-dependability-reliability"} <= set(plots)
    verdict = json.loads((pipeline / "reports/e2e/gate/verdict.json").read_text())
    assert verdict["passed"] is True
    assert verdict["variant"] == deployable["variant"]
    assert f"gate: all {len(verdict['checks'])} checks passed for e2e" in log
    assert (pipeline / "reports/e2e/dependability.html").read_text().count("data:image/png;base64,") == 4
    promoted = YAML(typ="safe").load((pipeline / "k8s/e2e/promoted.yaml").read_text())
    service = YAML(typ="safe").load((pipeline / "k8s/e2e/base/inferenceservice.yaml").read_text())
    assert service["metadata"]["annotations"]["autodl.dev/model-digest"] == promoted["digest"]
    assert "# Model card: e2e" in (pipeline / "reports/e2e/model_card.md").read_text()
    assert _autodl(pipeline, "compile", "--check").returncode == 0
    report = _autodl(pipeline, "report", "--rev", "HEAD").stdout  # what a pull request is shown
    assert "### e2e: gate passed" in report
    assert "_No metric changed against `HEAD`._" in report


UNREACHABLE_AUROC = 0.99


def test_every_report_renders_offline_in_a_real_browser(pipeline: Path, offline_browser, tmp_path: Path) -> None:
    """`dvc plots show` (every declared plot), the Data Docs, the dependability report and the model card, in
    headless Chromium with networking off: everything drew and nothing was fetched from elsewhere."""
    assert_project_reports_render_offline(pipeline, "e2e", offline_browser, tmp_path, report_images=4)


def _measured(repo: Path, check: str) -> float:
    verdict = json.loads((repo / "reports/e2e/gate/verdict.json").read_text())
    return next(c["measured"] for c in verdict["checks"] if c["name"] == check)


def test_a_failing_gate_stops_repro_with_its_reasons_and_leaves_the_gate_unlocked(pipeline: Path,
                                                                                   tmp_path: Path) -> None:
    clone = tmp_path / "strict"
    shutil.copytree(pipeline, clone, symlinks=True)
    # A tiny model can be perfect on 18 test images (accuracy 1.0, ECE 0), but not at telling 16 px digits from
    # 16 px crops of photographs: its far-OOD AUROC is far below 1.
    assert _measured(pipeline, "ood_auroc") < UNREACHABLE_AUROC
    _with_edit(clone, "min_auroc: 0.0", f"min_auroc: {UNREACHABLE_AUROC}")
    done = _run(clone, sys.executable, "-m", "dvc", "repro", check=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert re.findall(r"Running stage '([\w-]+)'", output) == ["e2e-gate"]  # thresholds re-run only the gate
    assert "nothing will be promoted" in output
    assert re.search(r"ood_auroc: measured [0-9.e-]+, dependability.ood.min_auroc needs at least 0.99 ", output)
    verdict = json.loads((clone / "reports/e2e/gate/verdict.json").read_text())
    assert verdict["passed"] is False
    assert verdict["failed"] == ["ood_auroc"]
    assert _changed_stages(clone) == {"gate", "promote"}  # a failed gate is never recorded as done
    # what `dvc repro` runs now: the gate (its params differ from what dvc.lock recorded) and promote (the gate
    # rewrote the verdict it reads), as real `dvc status` says, and nothing upstream
    impact = {row["stage"].removeprefix("e2e-"): row for row in json.loads(
        _autodl(clone, "impact", "specs/e2e.yaml", "--json").stdout)}
    assert {name for name, row in impact.items() if row["direct"]} == {"gate", "promote"}
    assert {name for name, row in impact.items() if row["reruns"]} == {"gate", "promote"}
    assert f"param e2e.dependability.ood.min_auroc: 0.0 -> {UNREACHABLE_AUROC}" in impact["gate"]["reasons"]
    assert ("input reports/e2e/gate/verdict.json (written by e2e-gate) changed since its last run"
            in impact["promote"]["reasons"])


def test_a_fresh_clone_runs_what_dvc_status_says_and_impact_says_why(pipeline: Path, tmp_path: Path) -> None:
    """A clone has dvc.lock but neither the outputs nor the cache: every stage's outputs are missing."""
    clone = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(pipeline), str(clone))
    flagged = _changed_stages(clone)
    impact = {row["stage"].removeprefix("e2e-"): row for row in json.loads(
        _autodl(clone, "impact", "specs/e2e.yaml", "--json").stdout)}
    assert {name for name, row in impact.items() if row["direct"]} == flagged == {s.name for s in STAGES}
    assert any(reason.startswith("output models/e2e/train is missing") for reason in impact["train"]["reasons"])
    assert not any("has not run yet" in reason for row in impact.values() for reason in row["reasons"])


def test_a_new_project_whose_first_run_fails_at_the_gate_leaves_git_status_clean(tmp_path: Path) -> None:
    """DVC rolls back the .gitignore entries of the stages that succeeded when a later one fails; the rules
    `autodl compile` writes keep every cached output out of `git status` all the same."""
    repo = tmp_path / "refused"
    repo.mkdir()
    _new_project(repo, SPEC.replace("min_auroc: 0.0", f"min_auroc: {UNREACHABLE_AUROC}"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "new project")
    done = _run(repo, sys.executable, "-m", "dvc", "repro", check=False)
    assert done.returncode != 0
    assert "nothing will be promoted" in done.stdout + done.stderr
    assert (repo / "models/e2e/train/model.safetensors").is_file()  # the stages before the gate did run
    status = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    leaked = [line for line in status if line[3:].startswith(("data/", "models/", "reports/e2e/validate/data_docs"))]
    assert not leaked, leaked


def test_a_search_budget_stops_the_search_and_the_model_still_trains_and_is_promoted(tmp_path: Path) -> None:
    """40 trials cannot fit in 15 seconds: the plan keeps the trials that fit, the clock stops the search if the
    machine is slower than planned, the log says what was cut, and the pipeline trains, gates and promotes the
    best setting found."""
    repo = tmp_path / "budget"
    repo.mkdir()
    _new_project(repo, SPEC.replace("hpo: {trials: 2,", "hpo: {trials: 40, budget_minutes: 0.25,"))
    log = _dvc(repo, "repro").stdout
    planned = int(log.split("train: search ")[1].split(" trial(s) of 2 epoch(s) (of the 40 x 2 asked for)")[0])
    assert 1 <= planned < 40, log
    ran = int(log.split("the search ran ")[1].split(f" of the {planned} trial(s)")[0])
    assert 1 <= ran <= planned, log
    if ran < planned:
        assert f"and skipped {planned - ran}: they would not have left the final training its time" in log
    searched = json.loads((repo / "reports/e2e/train/metrics.json").read_text())["hpo"]
    assert (searched["plan"]["trials"], searched["skipped_trials"]) == (planned, planned - ran)
    board = read_csv(repo / "reports/e2e/train/hpo/leaderboard.csv")
    assert list(board[0]) == ["rank", "trial", "state", "score", "scored_by", "epochs", "lr", "planned_minutes"]
    assert len(board) == ran
    plan = searched["plan"]
    for row in board:  # the plan's minutes (the same file on every run), while the log has the clock's
        assert float(row["planned_minutes"]) == pytest.approx(
            plan["trial_fit_minutes"] + int(row["epochs"]) * plan["trial_epoch_minutes"], abs=0.006)
        assert f"train: trial {row['trial'].split(':')[0]} took " in log
    assert json.loads((repo / "reports/e2e/gate/verdict.json").read_text())["passed"] is True
    promoted = YAML(typ="safe").load((repo / "k8s/e2e/promoted.yaml").read_text())
    service = YAML(typ="safe").load((repo / "k8s/e2e/base/inferenceservice.yaml").read_text())
    assert service["metadata"]["annotations"]["autodl.dev/model-digest"] == promoted["digest"]


# The final training's 40 epochs are seconds of work after trial 1 starts, so the Ctrl-C always lands while
# the stage runs: with 1 epoch, warm caches let the whole stage finish before the signal arrived.
SEARCH_TRAIN = ("train: {epochs: 40, batch_size: 16, hpo: {trials: 3, sampler: random, epochs_per_trial: 1, space: "
                "{backbone: {choices: [resnet10t, mobilenetv3_small_050]}, input_size_px: {choices: [16, 24]}}}}\n")


def test_a_search_over_backbones_and_sizes_runs_in_dvc_repro_and_resumes_after_an_interruption(
        tmp_path: Path) -> None:
    import signal

    repo = tmp_path / "search"
    repo.mkdir()
    _new_project(repo, SPEC[:SPEC.index("train: {")] + SEARCH_TRAIN)
    process = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "e2e-train"], cwd=repo, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if line.startswith("train: search trial 1: started"):  # trial 0 is recorded by then
            # Killed in the middle of the search, as a preempted node or an out-of-memory kill stops it: SIGKILL
            # stops every process of the run where it stands. (A Ctrl-C passes through DVC, the shell and
            # Lightning's own handler, and on this one-second search was seen to land after it had finished.)
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=300)
    first = "".join(seen)
    assert process.returncode != 0, first
    assert "the search's input_size_px choices get the data's native size, 32 px" in first
    done = _dvc(repo, "repro", "e2e-train")
    again = done.stdout + done.stderr
    assert "hyperparameter search ran 2 new trial(s)" in again, again  # trial 0 kept, the interrupted one again
    trials = (repo / "reports/e2e/train/hpo/trials.csv").read_text().splitlines()
    assert trials[0].split(",")[:4] == ["number", "state", "val_accuracy", "epochs"]
    assert {"backbone", "input_size_px"} <= set(trials[0].split(","))
    best = json.loads((repo / "reports/e2e/train/metrics.json").read_text())["hpo"]
    model = json.loads((repo / "models/e2e/train/model.json").read_text())
    assert (model["backbone"], model["input_size_px"]) == (best["best_backbone"], best["best_input_size_px"])


def test_pipeline_is_up_to_date_after_repro(pipeline: Path) -> None:
    assert _changed_stages(pipeline) == set()
    assert "Data and pipelines are up to date" in _dvc(pipeline, "status").stdout


UNEDITABLE = {"task": "changing the task swaps the whole stage graph (tests/e2e/test_e2e_detection.py), not one "
                      "stage's params"}


def test_edit_table_covers_every_declared_param() -> None:
    declared = {key for stage in STAGES for key in stage.params} - set(UNEDITABLE)
    covered = {key for key in EDITS if any(key == d or key.startswith(d + ".") for d in declared)}
    missing = {d for d in declared if not any(k == d or k.startswith(d + ".") for k in EDITS)}
    assert not missing, f"add an edit to EDITS for {sorted(missing)}"
    assert covered


@pytest.mark.parametrize("key", sorted(EDITS))
def test_spec_edit_invalidates_exactly_the_stages_that_read_it(pipeline: Path, key: str) -> None:
    (old, new), expected = EDITS[key]
    _with_edit(pipeline, old, new)
    try:
        assert _changed_stages(pipeline) == expected
        impact = json.loads(_autodl(pipeline, "impact", "specs/e2e.yaml", "--json").stdout)
        directly = {row["stage"].removeprefix("e2e-") for row in impact if row["changed_params"] or row["never_ran"]}
        assert directly == expected, "autodl impact disagrees with dvc status"
    finally:
        _restore(pipeline)


def test_impact_predicts_what_repro_reruns(pipeline: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(pipeline, clone, symlinks=True)
    _with_edit(clone, "val: 0.2, test: 0.2", "val: 0.25, test: 0.15")
    impact = json.loads(_autodl(clone, "impact", "specs/e2e.yaml", "--json").stdout)
    predicted = [row["stage"] for row in impact if row["reruns"]]
    ran = re.findall(r"Running stage '([\w-]+)'", _dvc(clone, "repro").stdout)
    assert predicted == ran == ["e2e-split", "e2e-prune", "e2e-train", "e2e-evaluate", "e2e-compress", "e2e-export",
                                "e2e-dependability", "e2e-gate", "e2e-promote"]
    assert _changed_stages(clone) == set()


def test_an_edit_to_the_shared_decoder_reruns_exactly_the_stages_that_import_it(pipeline: Path,
                                                                                tmp_path: Path) -> None:
    """Code dependencies come from each stage's import closure: a change to the image decoder (imported through
    several layers by most stages, directly by none but the loaders) is seen by dvc status, autodl impact
    and dvc repro alike, and only by the stages that run it."""
    clone = tmp_path / "decoder"
    shutil.copytree(pipeline, clone, symlinks=True)
    decoder = "runtime/images.py"
    # the file itself, or a code directory a stage runs whole (core.imports.compact_paths)
    listed_as = {name.removeprefix("e2e-"): next((d for d in entry.get("deps", [])
                                                  if d == decoder or decoder.startswith(f"{d}/")), None)
                 for name, entry in YAML(typ="safe").load((clone / "dvc.yaml").read_text())["stages"].items()}
    importing = {name for name, dep in listed_as.items() if dep}
    assert {"ingest", "embed", "train", "evaluate", "dependability"} <= importing
    assert not importing & {"validate", "gate", "promote"}
    with (clone / decoder).open("a") as handle:
        handle.write("\n# an edit that changes the file but not what it does\n")
    assert _changed_stages(clone) == importing
    impact = json.loads(_autodl(clone, "impact", "specs/e2e.yaml", "--json").stdout)
    named = {row["stage"].removeprefix("e2e-") for row in impact
             if f"code changed since its last run: {listed_as[row['stage'].removeprefix('e2e-')]}" in row["reasons"]}
    assert named == importing
    ran = {name.removeprefix("e2e-") for name in re.findall(r"Running stage '([\w-]+)'", _dvc(clone, "repro").stdout)}
    # Every importing stage re-runs; of the rest, only what reads export's summary may follow, since export
    # measures latency (the one figure that changes between runs); every other output is byte-identical.
    assert importing <= ran
    assert ran - importing <= {"gate", "promote"}
    assert _changed_stages(clone) == set()


def test_an_edit_to_one_stage_s_contract_reruns_that_stage_and_nothing_else(pipeline: Path, tmp_path: Path) -> None:
    """Each stage reads only its own contract (core/contracts/): declaring one more param for prune changes
    prune's code and params and no other stage's, so dvc status names prune alone; prune's outputs do not
    change, so dvc repro runs nothing after it."""
    clone = tmp_path / "contract"
    shutil.copytree(pipeline, clone, symlinks=True)
    contract = clone / "core/contracts/classification/prune.py"
    declared = 'params=("seed", "data.pruning"),'
    assert declared in contract.read_text()
    contract.write_text(contract.read_text().replace(declared, 'params=("seed", "data.pruning", "classes"),'))
    _autodl(clone, "compile")
    assert "e2e.classes" in YAML(typ="safe").load((clone / "dvc.yaml").read_text())["stages"]["e2e-prune"]["params"]
    assert _changed_stages(clone) == {"prune"}
    ran = re.findall(r"Running stage '([\w-]+)'", _dvc(clone, "repro").stdout)
    assert ran == ["e2e-prune"]
    assert _changed_stages(clone) == set()


def test_rerun_with_same_inputs_gives_same_outputs(pipeline: Path, tmp_path: Path) -> None:
    clone = tmp_path / "again"
    shutil.copytree(pipeline, clone, symlinks=True)
    before = {p: (clone / p).read_bytes() for p in (
        "models/e2e/train/model.safetensors", "reports/e2e/evaluate/metrics.json", "data/e2e/split/split.csv",
        "data/e2e/embed/embeddings.npy", "data/e2e/prune/split.csv", "reports/e2e/validate/result.json",
        "reports/e2e/clean/report.json", "reports/e2e/prune/projection.png", "reports/e2e/train/hpo/trials.csv",
        "models/e2e/hpo/study.db", "reports/e2e/train/augmentations.png", "reports/e2e/evaluate/misclassified.png",
        "reports/e2e/validate/data_docs/index.html", "models/e2e/compress/pruned_distilled.onnx",
        "models/e2e/compress/variants.json", "models/e2e/compress/pruned_distilled.safetensors",
        "reports/e2e/compress/rounds.csv")}
    _dvc(clone, "repro", "--force", "--no-run-cache")
    assert {p: (clone / p).read_bytes() for p in before} == before


def test_dependability_and_gate_rerun_on_the_same_model_give_the_same_bytes(pipeline: Path,
                                                                             tmp_path: Path) -> None:
    """Apart from the other stages: export picks the fastest variant, and latency is the one measurement that
    changes between runs, so a full `repro --force` may hand dependability another (equally valid) model."""
    clone = tmp_path / "again"
    shutil.copytree(pipeline, clone, symlinks=True)
    before = {p: (clone / p).read_bytes() for p in (
        "reports/e2e/dependability/metrics.json", "reports/e2e/dependability/ood.json",
        "reports/e2e/dependability/robustness.png", "reports/e2e/dependability/gradcam.png",
        "reports/e2e/dependability/reliability.png", "models/e2e/dependability/serving.json",
        "reports/e2e/dependability.html", "reports/e2e/gate/verdict.json", "reports/e2e/gate/summary.md")}
    for stage in ("e2e-dependability", "e2e-gate"):
        _dvc(clone, "repro", "--force", "--no-run-cache", "--single-item", stage)
    assert {p: (clone / p).read_bytes() for p in before} == before


def test_dvc_exp_run_sets_a_param_and_reruns_only_what_reads_it(pipeline: Path, tmp_path: Path) -> None:
    clone = tmp_path / "exp"
    shutil.copytree(pipeline, clone, symlinks=True)
    ran = _dvc(clone, "exp", "run", "-S", "e2e.train.optimizer.weight_decay=0.005").stdout
    assert re.findall(r"Running stage '([\w-]+)'", ran) == ["e2e-train", "e2e-evaluate", "e2e-compress",
                                                           "e2e-export", "e2e-dependability", "e2e-gate",
                                                           "e2e-promote"]
    experiments = json.loads(_dvc(clone, "exp", "show", "--json").stdout)
    runs = [exp for row in experiments for exp in (row.get("experiments") or [])]
    assert len(runs) == 1
    params = runs[0]["revs"][0]["data"]["params"]["params.yaml"]["data"]["e2e"]["train"]
    assert params["optimizer"]["weight_decay"] == 0.005
    metrics = runs[0]["revs"][0]["data"]["metrics"]["reports/e2e/evaluate/metrics.json"]["data"]
    assert 0 < metrics["accuracy"] <= 1


def _edit_file(repo: Path, old: str, new: str) -> None:
    spec = repo / "specs" / "e2e.yaml"
    text = spec.read_text()
    assert old in text, old
    spec.write_text(text.replace(old, new, 1))
    _autodl(repo, "compile")


def _k8s(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in (repo / "k8s").rglob("*") if p.is_file()}


def test_gitops_only_a_merge_of_a_passing_gate_changes_what_is_served(pipeline: Path, tmp_path: Path) -> None:
    """Real git, real DVC: branch, edit, repro, merge; k8s/ on main is what Argo CD would apply."""
    repo = tmp_path / "gitops"
    shutil.copytree(pipeline, repo, symlinks=True)
    main = git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    served = YAML(typ="safe").load((repo / "k8s/e2e/promoted.yaml").read_text())["digest"]

    git(repo, "checkout", "-q", "-b", "longer-finetuning")
    _edit_file(repo, "finetune_epochs: 1", "finetune_epochs: 2")  # a different model that still passes
    assert _run(repo, sys.executable, "-m", "dvc", "repro").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "longer fine-tuning")
    git(repo, "checkout", "-q", main)
    git(repo, "merge", "-q", "--no-ff", "-m", "merge longer-finetuning", "longer-finetuning")
    promoted = YAML(typ="safe").load((repo / "k8s/e2e/promoted.yaml").read_text())["digest"]
    service = YAML(typ="safe").load((repo / "k8s/e2e/base/inferenceservice.yaml").read_text())
    assert promoted != served
    assert service["metadata"]["annotations"]["autodl.dev/model-digest"] == promoted
    assert promoted.removeprefix("sha256:") in service["spec"]["predictor"]["model"]["storageUri"]
    after_good_merge = _k8s(repo)

    git(repo, "checkout", "-q", "-b", "impossible-ood")
    assert _measured(repo, "ood_auroc") < UNREACHABLE_AUROC
    _edit_file(repo, "min_auroc: 0.0", f"min_auroc: {UNREACHABLE_AUROC}")
    assert _run(repo, sys.executable, "-m", "dvc", "repro", check=False).returncode != 0  # the gate refuses
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "impossible OOD threshold")
    git(repo, "checkout", "-q", main)
    git(repo, "merge", "-q", "--no-ff", "-m", "merge impossible-ood", "impossible-ood")
    assert _k8s(repo) == after_good_merge  # byte for byte: the refused model never reaches serving


def _tracked_outputs(repo: Path) -> dict[str, bytes]:
    """Every file under the pipeline's output folders (DVC outputs, not in git)."""
    return {p.relative_to(repo).as_posix(): p.read_bytes()
            for folder in ("data", "models") for p in sorted((repo / folder).rglob("*")) if p.is_file()}


def test_pipeline_outputs_round_trip_through_an_s3_remote(pipeline: Path, tmp_path: Path, s3_bucket: str) -> None:
    """What a cluster step does: `dvc push` from one checkout, `dvc pull` into a fresh clone of the same commit
    on another machine, against a real S3 server on loopback (endpoint and keys from the environment)."""
    pushed = tmp_path / "pushed"
    shutil.copytree(pipeline, pushed, symlinks=True)
    remote = ("remote", "add", "-d", "--local", "cluster", f"s3://{s3_bucket}/dvc")
    _dvc(pushed, *remote)
    _dvc(pushed, "push")
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(pushed), str(fresh))
    assert not (fresh / "models/e2e/train/model.safetensors").exists()  # DVC outputs are not in git
    _dvc(fresh, *remote)
    _dvc(fresh, "pull")
    assert _tracked_outputs(fresh) == _tracked_outputs(pushed)
    assert _changed_stages(fresh) == set()  # the pulled outputs are exactly what dvc.lock records
