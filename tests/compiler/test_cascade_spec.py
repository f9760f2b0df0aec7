"""A cascade spec joins a detection project and a classifier on its crops: it compiles into stages that read both
projects' released models (DVC runs those projects first, and an edit to one re-runs only what reads it), and a
cascade that cannot work (a wrong project, classes or padding, keys a cascade has no use for) is an error at the
spec's line."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

FINE = """\
name: street
task: detection
classes: [sedan, bus]
data:
  sources:
    - {kind: coco, annotations: data/raw/instances.json}
"""

COARSE = """\
name: vehicles
task: detection
classes: [vehicle]
data:
  sources:
    - {kind: project, project: street, class_map: {"*": vehicle}}
"""

KINDS = """\
name: kinds
classes: [sedan, bus]
data:
  sources:
    - {kind: crops, project: vehicles, padding: 0.2}
"""

CASCADE = """\
name: street-cascade
task: cascade
classes: [sedan, bus]
cascade: {detector: vehicles, classifier: kinds, baseline: street, padding: 0.2}
dependability: {min_map: 0.4}
"""


def _projects(repo: Path, write_spec) -> None:
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / "raw" / "instances.json").write_text("{}")
    write_spec("street", FINE)
    write_spec("vehicles", COARSE)
    write_spec("kinds", KINDS)


def test_a_cascade_reads_both_released_models_and_its_detectors_test_images(repo: Path, write_spec, run_autodl
                                                                           ) -> None:
    _projects(repo, write_spec)
    write_spec("street-cascade", CASCADE)
    code, _, err = run_autodl("compile")
    assert code == 0, err
    stages = YAML(typ="safe").load((repo / "dvc.yaml").read_text())["stages"]
    assert [name for name in stages if name.startswith("street-cascade")] == [
        "street-cascade-evaluate", "street-cascade-dependability", "street-cascade-gate", "street-cascade-promote"]
    evaluate = stages["street-cascade-evaluate"]
    assert {"models/vehicles/release", "models/kinds/release", "models/street/export", "data/vehicles/ingest",
            "data/vehicles/split", "data/street/split"} <= set(evaluate["deps"])
    assert "--input detector=models/vehicles/release" in evaluate["cmd"]
    assert "--input baseline=models/street/export" in evaluate["cmd"]
    assert not any(dep.startswith(("reports/street/", "models/street/release")) for dep in evaluate["deps"]), \
        "the baseline is compared whatever its own gate says"
    gate = stages["street-cascade-gate"]
    assert {"reports/vehicles/gate/verdict.json", "reports/kinds/gate/verdict.json"} <= set(gate["deps"])
    assert not any("street/" in dep for dep in gate["deps"]), "the baseline is measured, never judged"
    params = YAML(typ="safe").load((repo / "params.yaml").read_text())["street-cascade"]
    assert params["cascade"] == {"detector": "vehicles", "classifier": "kinds", "baseline": "street", "padding": 0.2}
    assert params["dependability"]["min_map"] == 0.4
    assert (repo / "k8s" / "street-cascade" / "base" / "servingruntime.yaml").is_file()


def test_without_a_baseline_the_cascade_is_measured_alone(repo: Path, write_spec, run_autodl) -> None:
    _projects(repo, write_spec)
    write_spec("street-cascade", CASCADE.replace(", baseline: street", ""))
    code, _, err = run_autodl("compile")
    assert code == 0, err
    evaluate = YAML(typ="safe").load((repo / "dvc.yaml").read_text())["stages"]["street-cascade-evaluate"]
    assert "baseline" not in evaluate["cmd"]
    assert not any(dep.startswith(("data/street/", "models/street/")) for dep in evaluate["deps"])


def test_a_cascade_that_cannot_work_is_an_error_at_its_line(repo: Path, write_spec, run_autodl) -> None:
    _projects(repo, write_spec)
    broken = (CASCADE.replace("padding: 0.2}", "padding: 0.1}")
              .replace("classes: [sedan, bus]", "classes: [sedan, truck]")
              .replace("dependability: {min_map: 0.4}", "dependability: {min_map: 0.4, ood: {detector: knn}}"))
    write_spec("street-cascade", broken + "train: {epochs: 3}\n")
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs/street-cascade.yaml:3:" in err
    assert "classes: the cascade's classes ['sedan', 'truck'] are not the classes of its classifier 'kinds'" in err
    assert "cascade.padding: 0.1 is not the padding of the crops source of 'kinds' (0.2)" in err
    assert "train: a cascade sets no train of its own" in err
    assert "dependability.ood.detector: a cascade judges its end-to-end mAP" in err
    assert not (repo / "dvc.yaml").exists(), "nothing is written while a spec is wrong"


def test_a_cascades_classifier_must_learn_from_the_detectors_boxes(repo: Path, write_spec, run_autodl) -> None:
    _projects(repo, write_spec)
    write_spec("kinds", KINDS.replace("{kind: crops, project: vehicles, padding: 0.2}", "{kind: sklearn_digits}"))
    write_spec("street-cascade", CASCADE.replace("detector: vehicles", "detector: kinds"))
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "cascade.detector: project 'kinds' is task: classification, not detection" in err
    write_spec("street-cascade", CASCADE)
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "cascade.classifier: 'kinds' reads no crops of the boxes of 'vehicles'" in err


def test_a_cascades_loop_round_reads_the_pair_and_the_detectors_labelled_set(repo: Path, write_spec, run_autodl
                                                                              ) -> None:
    _projects(repo, write_spec)
    (repo / "pool").mkdir()
    write_spec("street-cascade", CASCADE + "active_learning: {pool: [{kind: images, path: pool}], batch_size: 5}\n")
    code, _, err = run_autodl("compile")
    assert code == 0, err
    select = YAML(typ="safe").load((repo / "dvc.yaml").read_text())["stages"]["street-cascade-select"]
    assert {"models/vehicles/release", "models/kinds/release", "models/street-cascade/cascade", "data/vehicles/ingest",
            "data/vehicles/embed", "data/vehicles/clean", "pool"} <= set(select["deps"])
    assert "--input embeddings=data/vehicles/embed" in select["cmd"]
    assert not any("street/" in dep for dep in select["deps"]), "the baseline plays no part in the loop"


def test_a_cascades_loop_ranks_by_its_one_figure_and_people_label(repo: Path, write_spec, run_autodl) -> None:
    _projects(repo, write_spec)
    (repo / "pool").mkdir()
    write_spec("street-cascade", CASCADE + "active_learning: {pool: [{kind: images, path: pool}], strategy: bald, "
               "auto_label: {min_confidence: 0.99}}\n")
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "active_learning.strategy: bald is not built for a cascade" in err
    assert "active_learning.auto_label: a cascade auto-labels nothing" in err


def test_a_pool_made_by_another_projects_synthesize_stage_need_not_exist_yet(repo: Path, write_spec, run_autodl
                                                                            ) -> None:
    _projects(repo, write_spec)
    write_spec("street", FINE + "  synthesize: {kind: digits_on_photos, pool_images: 20}\n")
    write_spec("street-cascade", CASCADE + "active_learning: {pool: [{kind: images, path: "
               "data/street/synthesize/pool}]}\n")
    code, _, err = run_autodl("compile")
    assert "data/street/synthesize/pool' does not exist" not in err
    write_spec("street-cascade", CASCADE + "active_learning: {pool: [{kind: images, path: data/vehicles/synthesize/"
               "pool}]}\n")
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "'data/vehicles/synthesize/pool' does not exist" in err, "vehicles synthesizes nothing"


def test_the_cascade_section_belongs_to_a_cascade_spec(repo: Path, write_spec, run_autodl) -> None:
    _projects(repo, write_spec)
    write_spec("kinds", KINDS + "cascade: {detector: vehicles, classifier: kinds}\n")
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs/kinds.yaml:6:10: cascade: the cascade section applies to task: cascade only" in err


def test_doctor_points_a_cascade_at_its_two_projects(repo: Path, write_spec, run_autodl) -> None:
    _projects(repo, write_spec)
    write_spec("street-cascade", CASCADE)
    code, _, err = run_autodl("doctor", "specs/street-cascade.yaml")
    assert code == 1
    assert "street-cascade is a cascade: its data are those of vehicles and kinds" in err
