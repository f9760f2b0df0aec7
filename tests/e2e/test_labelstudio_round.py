"""One round of the data loop through a real Label Studio (its REST API, sqlite, loopback), for a classifier and
for a detector: the queue the select stage writes imports with every prediction as a pre-annotation, the images
are served once the README's Local Files storage is connected, a person's corrections, skips and untouched tasks
come back through the `labelstudio` source exactly, JSON-MIN is refused, and a second round's predictions are the
ones annotators see after the README's model_version update."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.spec.data import LabelStudioSource
from tests.labelstudio_server import USER, LabelStudio, binary, label_studio
from vision.data.imageio import PixelLimits
from vision.data.labelstudio import RECTANGLES, SINGLE_CHOICE, Guess, LabelKind, label_config, prediction, task
from vision.data.sources import RepoFiles, SourceStats, UnsupportedSource, iter_source
from vision.detection.formats import SourceProblems, iter_box_source

pytestmark = pytest.mark.slow

PREFIX = "/data/local-files/?d="
WIDTH, HEIGHT = 200, 100


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabelStudio, Path]:
    if not binary().is_file():
        pytest.fail(f"{binary()} is missing: `make test` installs Label Studio {binary().parent.parent.name} "
                    "(or set AUTODL_LABEL_STUDIO)")
    root = tmp_path_factory.mktemp("repo")
    with label_studio(root, tmp_path_factory.mktemp("label-studio")) as running:
        yield running, root


def _images(root: Path, names: list[str]) -> None:
    rng = np.random.default_rng(0)
    for name in names:
        path = root / "data" / "pool" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(path)


def _queue(root: Path, project: str, guesses: dict[str, list[Guess]], version: str) -> Path:
    """What the select stage writes: one task per image with the model's guesses as a prediction."""
    tasks = [task(f"{PREFIX}data/pool/{name}.png", {"path": f"data/pool/{name}.png"},
                  [prediction(found, WIDTH, HEIGHT, version)]) for name, found in guesses.items()]
    path = root / "data" / project / f"labelstudio_tasks_{version.rsplit(':', 1)[-1]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tasks))
    return path


def _start_round(ls: LabelStudio, root: Path, title: str, classes: list[str], kind: LabelKind, queue: Path) -> tuple[
        int, dict[str, int]]:
    """The README's steps: a project with the generated interface, Local Files storage on the repository's data
    folder, the queue imported. Returns the project and each image's task id."""
    project = ls.project(title, label_config(classes, kind))
    ls.call("POST", "/api/storages/localfiles/", json={"project": project, "path": str(root / "data"),
                                                       "use_blob_urls": False, "title": "repository data"})
    ls.call("POST", f"/api/projects/{project}/import", json=json.loads(queue.read_text()))
    return project, {t["data"]["autodl_path"]: t["id"] for t in ls.tasks(project)}


def _write(root: Path, relative: str, exported: object) -> None:
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_text(json.dumps(exported))


def _choice(label: str) -> dict[str, object]:
    return {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}


def test_a_classification_round_through_label_studio(server: tuple[LabelStudio, Path]) -> None:
    ls, root = server
    _images(root, ["a", "b", "c"])
    queue = _queue(root, "cls", {"a": [Guess("cat", 0.6)], "b": [Guess("dog", 0.55)], "c": [Guess("cat", 0.7)]},
                   "autodl:r1")
    project, ids = _start_round(ls, root, "cls round one", ["cat", "dog"], SINGLE_CHOICE, queue)
    assert all(t["total_predictions"] == 1 for t in ls.tasks(project))  # every guess is a pre-annotation
    assert ls.call("GET", f"/api/projects/{project}")["model_version"] == "autodl:r1"
    served = ls.call("GET", f"{PREFIX}data/pool/a.png")
    assert served == (root / "data/pool/a.png").read_bytes()  # the storage connection serves the image

    ls.call("POST", f"/api/tasks/{ids['data/pool/a.png']}/annotations", json={"result": [_choice("dog")]})  # fix
    ls.call("POST", f"/api/tasks/{ids['data/pool/b.png']}/annotations", json={"result": [], "was_cancelled": True})
    # c: nobody touches it
    _write(root, "labels/cls/round-01.json", ls.export(project))
    _write(root, "labels/cls-detailed/round-01.json", ls.snapshot_with_details(project))
    _write(root, "labels/cls-min/round-01.json", ls.export(project, "JSON_MIN"))

    def read(path: str, **options: object) -> tuple[list, SourceStats]:
        stats = SourceStats()
        source = LabelStudioSource(kind="labelstudio", path=path, queue=queue.relative_to(root).as_posix(),
                                   **options)
        return list(iter_source(source, root, stats=stats)), stats

    people, stats = read("labels/cls")
    assert [(i.label, i.provenance.annotator, i.provenance.confirmed) for i in people] == [
        ("dog", "labelstudio:user-1", "true")]
    assert people[0].read().size == (WIDTH, HEIGHT)
    skipped = sorted((Path(s.origin).name.split("#")[0], s.reason.split(":")[0].split(" (")[0]) for s in stats.skipped)
    assert skipped == [
        ("labelstudio_tasks_r1.json", "in the queue but not in the export"),
        ("round-01.json", "every annotation of the task was cancelled")]
    detailed, _ = read("labels/cls-detailed")
    assert [i.provenance.annotator for i in detailed] == [f"labelstudio:{USER}"]
    with_auto, stats = read("labels/cls-detailed", accept_predictions=True)
    assert [(i.label, i.provenance.annotator) for i in with_auto] == [("dog", f"labelstudio:{USER}"),
                                                                       ("cat", "model:autodl:r1")]
    with pytest.raises(UnsupportedSource, match="a JSON-MIN export"):
        read("labels/cls-min")

    # round two into the same project: annotators see the new model's guesses once the project's version moves
    _images(root, ["d"])
    second = _queue(root, "cls", {"d": [Guess("dog", 0.51)]}, "autodl:r2")
    ls.call("POST", f"/api/projects/{project}/import", json=json.loads(second.read_text()))
    ls.call("PATCH", f"/api/projects/{project}", json={"model_version": "autodl:r2"})
    assert ls.call("GET", f"/api/projects/{project}")["model_version"] == "autodl:r2"
    new_task = next(t for t in ls.tasks(project) if t["data"]["autodl_path"] == "data/pool/d.png")
    shown = ls.call("GET", f"/api/predictions/?task={new_task['id']}")
    assert [p["model_version"] for p in shown] == ["autodl:r2"]


def test_a_detection_round_through_label_studio(server: tuple[LabelStudio, Path]) -> None:
    ls, root = server
    _images(root, ["e", "f"])
    queue = _queue(root, "det", {"e": [Guess("car", 0.6, (20.0, 10.0, 70.0, 60.0))],
                                 "f": [Guess("person", 0.5, (100.0, 20.0, 140.0, 90.0))]}, "autodl:d1")
    project, ids = _start_round(ls, root, "det round one", ["car", "person"], RECTANGLES, queue)
    assert all(t["total_predictions"] == 1 for t in ls.tasks(project))
    moved = {"from_name": "label", "to_name": "image", "type": "rectanglelabels", "original_width": WIDTH,
             "original_height": HEIGHT, "value": {"x": 10.0, "y": 20.0, "width": 30.0, "height": 50.0, "rotation": 0,
                                                  "rectanglelabels": ["car"]}}
    ls.call("POST", f"/api/tasks/{ids['data/pool/e.png']}/annotations", json={"result": [moved]})
    _write(root, "labels/det/round-01.json", ls.snapshot_with_details(project))
    stats, problems = SourceStats(), SourceProblems()
    source = LabelStudioSource(kind="labelstudio", path="labels/det", queue=queue.relative_to(root).as_posix(),
                               accept_predictions=True)
    items = list(iter_box_source(source, root, RepoFiles(root.resolve(), PixelLimits()), stats, problems))
    assert [[(b.label, *b.in_pixels(WIDTH, HEIGHT)) for b in item.boxes] for item in items] == [
        [("car", 20.0, 20.0, 80.0, 70.0)], [("person", 100.0, 20.0, 140.0, 90.0)]]
    assert [(i.provenance.annotator, i.provenance.confirmed) for i in items] == [
        (f"labelstudio:{USER}", "true"), ("model:autodl:d1", "false")]


def test_a_tagging_round_through_label_studio(server: tuple[LabelStudio, Path]) -> None:
    """A multiple-choice interface (the tagger's) accepted by Label Studio; an annotation with several tags, one
    choosing none (a negative, kept) and a cancelled one come back through the tagger's source reader."""
    from vision.data.tag_sources import MULTIPLE_CHOICES, iter_tagged_source

    ls, root = server
    _images(root, ["t1", "t2", "t3"])
    tasks = [task(f"{PREFIX}data/pool/{name}.png", {"path": f"data/pool/{name}.png"}, [])
             for name in ("t1", "t2", "t3")]
    queue = root / "data" / "tags" / "labelstudio_tasks_t1.json"
    queue.parent.mkdir(parents=True, exist_ok=True)
    queue.write_text(json.dumps(tasks))
    config = label_config(["night", "rain", "tunnel"], MULTIPLE_CHOICES)
    assert 'choice="multiple"' in config
    project, ids = _start_round(ls, root, "tags round one", ["night", "rain", "tunnel"], MULTIPLE_CHOICES, queue)
    chosen = {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["tunnel", "night"]}}
    ls.call("POST", f"/api/tasks/{ids['data/pool/t1.png']}/annotations", json={"result": [chosen]})
    ls.call("POST", f"/api/tasks/{ids['data/pool/t2.png']}/annotations", json={"result": []})
    ls.call("POST", f"/api/tasks/{ids['data/pool/t3.png']}/annotations", json={"result": [], "was_cancelled": True})
    _write(root, "labels/tags/round-01.json", ls.export(project))

    stats = SourceStats()
    source = LabelStudioSource(kind="labelstudio", path="labels/tags")
    items = list(iter_tagged_source(source, root, stats, PixelLimits(), ["night", "rain", "tunnel"]))
    assert sorted((i.origin.rsplit("#", 1)[-1], i.label) for i in items) == sorted(
        [(f"task {ids['data/pool/t1.png']}", "night|tunnel"), (f"task {ids['data/pool/t2.png']}", "")])
    assert all(i.read().size == (WIDTH, HEIGHT) for i in items)
    assert [s.reason.split(" (")[0] for s in stats.skipped] == ["every annotation of the task was cancelled"]
