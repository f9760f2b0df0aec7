"""Projects that learn from a detection project's boxes (a classifier on its crops, a coarser detector on its
images): the source compiles into an ingest that depends on the detector's ingest and split (DVC runs them
first), and names of projects that cannot give boxes are errors at the spec's line."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

DETECTOR = """\
name: street
task: detection
classes: [car]
data:
  sources:
    - {kind: coco, annotations: data/raw/instances.json, class_map: {sedan: car, bus: car}}
"""

CLASSIFIER = """\
name: vehicle-kinds
classes: [sedan, bus]
data:
  sources:
    - {kind: crops, project: street, padding: 0.2}
"""


def test_the_classifiers_ingest_depends_on_the_detectors_ingest_and_split(repo: Path, write_spec, run_autodl
                                                                         ) -> None:
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / "raw" / "instances.json").write_text("{}")
    write_spec("street", DETECTOR)
    write_spec("vehicle-kinds", CLASSIFIER)
    code, _, err = run_autodl("compile")
    assert code == 0, err
    stages = YAML(typ="safe").load((repo / "dvc.yaml").read_text())["stages"]
    deps = stages["vehicle-kinds-ingest"]["deps"]
    assert "data/street/ingest" in deps
    assert "data/street/split/split.csv" in deps
    outs = [str(o) for o in stages["street-ingest"]["outs"]] + [str(o) for o in stages["street-split"]["outs"]]
    assert any("data/street/ingest" in o for o in outs), "the dependency is another stage's output, run first"


def test_a_crops_source_must_name_a_detection_project(repo: Path, write_spec, run_autodl) -> None:
    write_spec("vehicle-kinds", CLASSIFIER)
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs/vehicle-kinds.yaml:5:" in err
    assert "data.sources[0].project: no spec specs/street.yaml" in err
    write_spec("street", "name: street\nclasses: [a, b]\ndata:\n  sources:\n    - {kind: sklearn_digits}\n")
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "project 'street' is task: classification, not detection" in err
    assert not (repo / "dvc.yaml").exists(), "nothing is written while a spec is wrong"


COARSE = """\
name: any-vehicle
task: detection
classes: [vehicle]
data:
  sources:
    - {kind: project, project: street, class_map: {"*": vehicle}}
"""


def test_a_coarse_detector_reads_the_fine_detectors_ingest_and_split(repo: Path, write_spec, run_autodl) -> None:
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / "raw" / "instances.json").write_text("{}")
    write_spec("street", DETECTOR)
    write_spec("any-vehicle", COARSE)
    code, _, err = run_autodl("compile")
    assert code == 0, err
    deps = YAML(typ="safe").load((repo / "dvc.yaml").read_text())["stages"]["any-vehicle-ingest"]["deps"]
    assert {"data/street/ingest", "data/street/split/split.csv"} <= set(deps)


def test_a_project_source_carries_boxes_and_its_map_names_the_specs_classes(repo: Path, write_spec, run_autodl
                                                                            ) -> None:
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / "raw" / "instances.json").write_text("{}")
    write_spec("street", DETECTOR)
    write_spec("any-vehicle", COARSE.replace('{"*": vehicle}', '{"*": vehicles}'))
    write_spec("kinds", "name: kinds\nclasses: [a, b]\ndata:\n  sources:\n    - {kind: project, project: street}\n")
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs/any-vehicle.yaml:6:" in err
    assert "data.sources[0].class_map.*: maps '*' to 'vehicles', which is not among classes ['vehicle']" in err
    assert "specs/kinds.yaml:5:" in err
    assert "data.sources[0].kind: project sources carry boxes" in err
