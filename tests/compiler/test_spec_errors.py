"""Error snapshots: every malformed spec is reported like a compiler, exits 2 and writes nothing.

Each case gives the spec text and the exact first line expected on stderr
(`file:line:column: field.path: message`), plus a fragment of the hint where one matters.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from compiler.errors import SpecError
from compiler.load import load_spec

GOOD = """\
name: good
classes: ["0", "1"]
data:
  sources:
    - kind: sklearn_digits
"""

BASE = GOOD.replace("name: good", "name: bad")


def with_lines(*extra: str) -> str:
    return BASE + "\n".join(extra) + "\n"


DETECTION = """\
name: bad
task: detection
classes: [car, person]
data:
  sources:
    - {kind: coco, annotations: data/coco.json}
"""


def detection_with(*extra: str) -> str:
    return DETECTION + "\n".join(extra) + "\n"


MULTILABEL = """\
name: bad
task: multilabel
classes: [animal, person]
data:
  sources:
    - {kind: photo_mosaics, images: 100}
"""


def multilabel_with(*extra: str) -> str:
    return MULTILABEL + "\n".join(extra) + "\n"


CASES: list[tuple[str, str, str, str | None]] = [
    ("unknown-top-level-key", with_lines("modle: {}"),
     "6:1: modle: unknown field 'modle'", "did you mean 'model'?"),
    ("budget-out-of-range", with_lines("  pruning: {budget: 1.5}"),
     "6:21: data.pruning.budget: must be > 0 and <= 1 (got 1.5)", None),
    ("budget-zero", with_lines("  pruning: {budget: 0}"),
     "6:21: data.pruning.budget: must be > 0 and <= 1 (got 0.0)", None),
    ("missing-classes", "name: bad\ndata:\n  sources:\n    - kind: sklearn_digits\n",
     "1:1: classes: required field is missing", "add 'classes:'"),
    ("missing-data", "name: bad\nclasses: ['0', '1']\n",
     "1:1: data: required field is missing", "add 'data:'"),
    ("duplicate-class", BASE.replace('["0", "1"]', '["0", "1", "0"]'),
     "2:21: classes[2]: class '0' repeats classes[0]", "unique"),
    ("single-class", BASE.replace('["0", "1"]', '["0"]'),
     "2:10: classes: task: classification needs at least 2 classes (got 1)", "use task: detection"),
    ("single-tag", MULTILABEL.replace("[animal, person]", "[animal]"),
     "3:10: classes: task: multilabel needs at least 2 classes (got 1)", "use task: classification"),
    ("no-class", BASE.replace('["0", "1"]', '[]'),
     "2:10: classes: needs at least 1 item (got 0)", None),
    ("class-with-slash", BASE.replace('["0", "1"]', '["0", "a/b"]'),
     "2:16: classes[1]: invalid value 'a/b'", "folder names"),
    ("name-not-dns", BASE.replace("name: bad", "name: Bad_Name"),
     "1:7: name: invalid value 'Bad_Name'", "DNS label"),
    ("name-differs-from-file", BASE.replace("name: bad", "name: other"),
     "1:7: name: 'other' differs from the file name 'bad'", "rename the file to other.yaml"),
    ("split-does-not-sum", with_lines("  split: {train: 0.8, val: 0.15, test: 0.15}"),
     "6:10: data.split: train + val + test must sum to 1 (got 1.1)", "train: 0.7"),
    ("seed-quoted", with_lines('seed: "7"'),
     "6:7: seed: must be an integer (got '7')", "remove the quotes"),
    ("seed-negative", with_lines("seed: -1"),
     "6:7: seed: must be >= 0 (got -1)", None),
    ("epochs-fractional", with_lines("train: {epochs: 2.5}"),
     "6:17: train.epochs: must be an integer (got 2.5)", None),
    ("augment-not-a-number", with_lines("augment: {fog: high}"),
     "6:16: augment.fog: must be a number (got 'high')", None),
    ("source-kind-typo", BASE.replace("kind: sklearn_digits", "kind: sklearn_digit"),
     "5:13: data.sources[0].kind: unknown kind 'sklearn_digit'; expected one of sklearn_digits, image_folder,"
     " manifest, video", "did you mean 'sklearn_digits'?"),
    ("source-without-kind", BASE.replace("- kind: sklearn_digits", "- path: data/raw"),
     "5:7: data.sources[0]: needs a 'kind' field", "kind: image_folder"),
    ("no-sources", BASE.replace("    - kind: sklearn_digits\n", "").replace("sources:", "sources: []"),
     "4:12: data.sources: needs at least 1 item (got 0)", None),
    ("absolute-path", with_lines("    - {kind: image_folder, path: /etc}"),
     "6:34: data.sources[1].path: must be a path relative to the repository root (got '/etc')", None),
    ("path-escapes-repo", with_lines("    - {kind: manifest, path: data/../../outside.csv}"),
     "6:30: data.sources[1].path: path leaves the repository (got data/../../outside.csv)", None),
    ("video-manifest-missing", with_lines("    - {kind: video, path: data/drive.mp4, label_from: manifest}"),
     "6:7: data.sources[1].manifest: a manifest is required exactly when label_from is 'manifest'", None),
    ("unknown-backbone", with_lines("model: {backbone: resnet10}"),
     "6:19: model.backbone: 'resnet10' is not a timm model", "resnet10t"),
    ("pretrained-wrong-backbone", with_lines("model: {backbone: resnet10t, pretrained: efficientnet_lite0_imagenet}"),
     "6:42: model.pretrained: efficientnet_lite0_imagenet weights fit backbone 'tf_efficientnet_lite0', not "
     "'resnet10t'", "set model.backbone: tf_efficientnet_lite0"),
    ("input-size-too-small", with_lines("model: {input_size_px: 4}"),
     "6:24: model.input_size_px: must be >= 8 and <= 1024 (got 4)", None),
    ("input-size-neither-number-nor-auto", with_lines("model: {input_size_px: big}"),
     "6:24: model.input_size_px: must be an integer (got 'big'), or one of 'auto'", None),
    ("auto-student", with_lines("compress: {student: auto}"),
     "6:21: compress.student: 'auto' is not a timm model", None),
    ("thaw-without-frozen-levels", with_lines("train: {freeze: 0, thaw_epochs: 2}"),
     "6:33: train.thaw_epochs: thaws frozen levels, but train.freeze is 0", "set train.freeze to a number of levels"),
    ("thaw-negative", with_lines("train: {thaw_epochs: -1}"),
     "6:22: train.thaw_epochs: must be >= 0 (got -1), or one of 'auto'", None),
    ("unknown-optimizer-field", with_lines("train:", "  optimizer: {name: adamw, learning_rate: 0.1}"),
     "7:28: train.optimizer.learning_rate: unknown field 'learning_rate'", "allowed: lr, momentum, name, weight_decay"),
    ("unknown-optimizer", with_lines("train:", "  optimizer: {name: adamx}"),
     "7:21: train.optimizer.name: must be one of 'adamw', 'adam', 'sgd' (got 'adamx')",
     "did you mean 'adam' or 'adamw'?"),
    ("hpo-low-above-high", with_lines("train:", "  hpo:", "    space:", "      lr: {low: 0.1, high: 0.01}"),
     "9:11: train.hpo.space.lr: needs low < high (got low=0.1, high=0.01)", None),
    ("hpo-grid-needs-choices", with_lines("train:", "  hpo: {sampler: grid}"),
     "7:8: train.hpo.space.lr: the grid sampler needs choices for every parameter", None),
    ("hpo-unknown-tunable", with_lines("train:", "  hpo:", "    space:", "      momentm: {low: 0.1, high: 0.9}"),
     "9:7: train.hpo.space.momentm: unknown key 'momentm'; allowed: lr, weight_decay, batch_size, "
     "label_smoothing, drop_rate, backbone, input_size_px, freeze, balance", None),
    ("hpo-backbone-typo", with_lines("train:", "  hpo:", "    space:",
                                     "      backbone: {choices: [resnet10t, tf_efficientnet_lite]}"),
     "9:39: train.hpo.space.backbone.choices[1]: 'tf_efficientnet_lite' is not a timm model", "did you mean"),
    ("hpo-backbone-range", with_lines("train:", "  hpo:", "    space:", "      backbone: {low: 1, high: 2}"),
     "9:17: train.hpo.space.backbone: backbone is searched over a list of choices",
     "for example {choices: [resnet10t, tf_efficientnet_lite0]}"),
    ("hpo-size-out-of-range", with_lines("train:", "  hpo:", "    space:",
                                         "      input_size_px: {choices: [128, 4096]}"),
     "9:38: train.hpo.space.input_size_px.choices[1]: 4096 is not a size in pixels from 8 to 1024", None),
    ("hpo-freeze-word", with_lines("train:", "  hpo:", "    space:", "      freeze: {choices: [0, some]}"),
     "9:29: train.hpo.space.freeze.choices[1]: 'some' is not a number of levels from 0 to 8, or all", None),
    ("hpo-balance-word", with_lines("train:", "  hpo:", "    space:", "      balance: {choices: [none, oversample]}"),
     "9:33: train.hpo.space.balance.choices[1]: 'oversample' is not one of none, sampler, loss", None),
    ("hpo-lr-word", with_lines("train:", "  hpo:", "    space:", "      lr: {choices: [0.01, fast]}"),
     "9:28: train.hpo.space.lr.choices[1]: 'fast' is not a number", None),
    ("compress-method-twice", with_lines("compress: {methods: [quantize, quantize]}"),
     "6:32: compress.methods[1]: 'quantize' is listed twice", None),
    ("weight-bits-six", with_lines("compress:", "  quantization: {weight_bits: 6}"),
     "7:31: compress.quantization.weight_bits: must be one of 'auto', 7, 8 (got 6)", None),
    ("sparse-regularisation-zero", with_lines("compress:", "  sparse_training: {regularisation: 0}"),
     "7:37: compress.sparse_training.regularisation: must be > 0 and <= 1000 (got 0.0)", None),
    ("allocation-typo", with_lines("compress: {allocation: globl}"),
     "6:24: compress.allocation: must be one of 'uniform', 'global' (got 'globl')", "did you mean 'global'?"),
    ("sparse-method-misspelt", with_lines("compress: {methods: [sparse_training]}"),
     "6:22: compress.methods[0]: must be one of 'structured_prune', 'distill', 'quantize', 'sparse_train' (got "
     "'sparse_training')", "did you mean 'sparse_train'?"),
    ("fp32-layers-negative", with_lines("compress:", "  quantization: {max_fp32_layers: -1}"),
     "7:35: compress.quantization.max_fp32_layers: must be >= 0 and <= 256 (got -1)", None),
    ("unknown-hardware", with_lines("target: {hardware: cpu-x68}"),
     "6:20: target.hardware: must be one of 'cpu-x86', 'cpu-arm', 'nvidia-t4', 'jetson-orin' (got 'cpu-x68')",
     "did you mean 'cpu-x86'?"),
    ("accuracy-threshold-above-one", with_lines("dependability: {min_accuracy: 1.2}"),
     "6:31: dependability.min_accuracy: must be >= 0 and <= 1 (got 1.2)", None),
    ("auroc-negative", with_lines("dependability:", "  ood: {min_auroc: -0.1}"),
     "7:20: dependability.ood.min_auroc: must be >= 0 and <= 1 (got -0.1)", None),
    ("severity-zero", with_lines("dependability:", "  robustness: {severities: [0, 2]}"),
     "7:29: dependability.robustness.severities[0]: must be >= 1 and <= 5 (got 0)", None),
    ("canary-over-100", with_lines("serving: {canary_percent: 150}"),
     "6:27: serving.canary_percent: must be >= 0 and <= 100 (got 150)", None),
    ("replicas-reversed", with_lines("serving: {min_replicas: 5, max_replicas: 2}"),
     "6:25: serving.min_replicas: min_replicas (5) exceeds max_replicas (2)", None),
    ("storage-uri-scheme", with_lines("serving: {storage_uri: 'ftp://models'}"),
     "6:24: serving.storage_uri: invalid value 'ftp://models'", "s3://"),
    ("digits-without-digit-classes", BASE.replace('["0", "1"]', "[cat, dog]"),
     "5:7: data.sources[0]: sklearn_digits provides classes '0'..'9', none of which is in classes", None),
    ("duplicate-key", with_lines("seed: 1", "seed: 2"),
     "7:1: seed: duplicate key 'seed' (first defined on line 6)", "each field may appear once"),
    ("nested-duplicate-key", with_lines("train:", "  epochs: 3", "  epochs: 4"),
     "8:3: train.epochs: duplicate key 'epochs' (first defined on line 7)", None),
    ("merge-key", with_lines("base: &b {epochs: 3}", "train:", "  <<: *b"),
     "8:3: train: YAML merge keys ('<<') are not supported", "write the fields out"),
    ("two-documents", BASE + "---\n" + GOOD,
     "7:1: file holds several YAML documents ('---'); put one project in each file", None),
    ("top-level-list", "- name: bad\n",
     "1:1: top level must be a mapping of fields (got a list)", None),
    ("empty-file", "# nothing here\n",
     "1:1: file is empty; a spec is a YAML mapping with at least name, classes and data", None),
    ("tab-indentation", with_lines("train:", "\tepochs: 3"),
     "7:1: invalid YAML: a tab character where YAML expects indentation or a value", "replace the tab with spaces"),
    ("syntax-error", with_lines("train: {epochs: 3"),
     "7:1: invalid YAML: while parsing a flow mapping", None),
    ("explicit-str-tag-is-fine-but-seed-is-not-a-string", with_lines("seed: !!str 7"),
     "6:7: seed: must be an integer (got '7')", None),
    ("custom-tag", with_lines("seed: !!python/object:os.system 1"),
     "6:7: seed: YAML tag tag:yaml.org,2002:python/object:os.system is not supported", None),
    ("non-string-key", with_lines("train:", "  1: x"),
     "7:3: train: keys must be strings (got 1)", "quote the key"),
    ("task-typo", BASE.replace("name: bad", "name: bad\ntask: detecton"),
     "2:7: task: must be one of 'classification', 'detection', 'multilabel', 'cascade' (got 'detecton')",
     "did you mean 'detection'?"),
    ("detection-section-in-classification", with_lines("detection: {input_size_px: 320}"),
     "6:12: detection: detection applies to task: detection only", "set task: detection"),
    ("box-source-in-classification", with_lines("    - {kind: yolo, path: data/yolo}"),
     "6:14: data.sources[1].kind: yolo sources carry boxes, which classification cannot use", "task: detection"),
    ("classification-source-in-detection", DETECTION.replace("{kind: coco, annotations: data/coco.json}",
                                                             "{kind: sklearn_digits}"),
     "6:14: data.sources[0].kind: sklearn_digits sources carry no boxes", "coco, yolo, voc or labelstudio"),
    ("class-map-to-an-unknown-class", DETECTION.replace("annotations: data/coco.json}",
                                                        "annotations: data/coco.json, class_map: {sedan: cars}}"),
     "6:68: data.sources[0].class_map.sedan: maps 'sedan' to 'cars', which is not among classes", "one of `classes`"),
    ("class-map-in-classification", with_lines("    - {kind: labelstudio, path: export.json, class_map: {a: b}}"),
     "6:57: data.sources[1].class_map: class_map maps box categories", "task: detection"),
    ("detection-input-size-not-multiple", detection_with("detection: {input_size_px: 300}"),
     "7:28: detection.input_size_px: 300 is not a multiple of the largest stride, 32", "for example 288"),
    ("detection-input-size-three-numbers", detection_with("detection: {input_size_px: [320, 256, 3]}"),
     "7:28: detection.input_size_px", None),
    ("detection-stride-unknown", detection_with("detection: {strides: [8, 12]}"),
     "7:26: detection.strides[1]: must be one of 8, 16, 32, 64 (got 12)", None),
    ("detection-strides-unordered", detection_with("detection: {strides: [16, 8]}"),
     "7:22: detection.strides: strides must be distinct and increasing", None),
    ("detection-nms-zero", detection_with("detection: {nms_iou: 0}"),
     "7:22: detection.nms_iou: must be > 0 and <= 1 (got 0.0)", None),
    ("detection-model-input-size", detection_with("model: {input_size_px: 64}"),
     "7:24: model.input_size_px: model.input_size_px does not apply to task: detection", "detection.input_size_px"),
    ("detection-label-smoothing", detection_with("train: {label_smoothing: 0.1}"),
     "7:26: train.label_smoothing: train.label_smoothing does not apply to task: detection", "focal loss"),
    ("detection-select-by-accuracy", detection_with("train: {select_by: val_accuracy}"),
     "7:20: train.select_by: val_accuracy is a classification figure", "val_map"),
    ("val-map-in-classification", with_lines("train: {select_by: val_map}"),
     "6:20: train.select_by: val_map is a detection figure", None),
    ("detection-sparse-training", detection_with("compress: {methods: [structured_prune, sparse_train]}"),
     "7:40: compress.methods[1]: sparse_train is built for classifiers only", "structured_prune"),
    ("student-head-for-a-classifier", with_lines("compress: {student_head: {fpn_channels: 64}}"),
     "6:26: compress.student_head: compress.student_head applies to task: detection only", "set task: detection"),
    ("detection-min-accuracy", detection_with("dependability: {min_accuracy: 0.8}"),
     "7:31: dependability.min_accuracy: dependability.min_accuracy does not apply to task: detection", "min_map"),
    ("detection-softmax-ood", detection_with("dependability: {ood: {detector: energy}}"),
     "7:33: dependability.ood.detector: energy scores one softmax per image", "mahalanobis or knn"),
    ("detection-rotation", detection_with("dependability: {robustness: {corruptions: [fog, rotation]}}"),
     "7:49: dependability.robustness.corruptions[1]: rotation moves pixels", "pixel-only"),
    ("min-map-in-classification", with_lines("dependability: {min_map: 0.5}"),
     "6:26: dependability.min_map: dependability.min_map applies to task: detection only", None),
    ("detection-search-label-smoothing", detection_with("train:", "  hpo:", "    space:",
                                                        "      label_smoothing: {low: 0.0, high: 0.2}"),
     "10:24: train.hpo.space.label_smoothing: label_smoothing cannot be searched for a detector", "search lr"),
    ("boxes-area-fraction-one-number", DETECTION.replace("  sources:", "  boxes: {area_fraction: [0.1]}\n  sources:"),
     "data.boxes.area_fraction", None),
    ("boxes-negative-tolerance", DETECTION.replace("  sources:", "  boxes: {clip_tolerance_px: -1}\n  sources:"),
     "5:30: data.boxes.clip_tolerance_px: must be >= 0 (got -1", None),
    ("boxes-in-classification", BASE.replace("  sources:", "  boxes: {min_instances_per_class: 5}\n  sources:"),
     "4:10: data.boxes: data.boxes applies to task: detection only", None),
    ("synthesize-unread", DETECTION.replace("  sources:", "  synthesize: {kind: digits_on_photos}\n  sources:"),
     "5:15: data.synthesize: no coco source reads what it writes (data/bad/synthesize)", "annotations.json"),
    ("loop-bald-for-detection", detection_with("active_learning: {pool: [{kind: images, path: data}], "
                                               "strategy: bald}"),
     "7:65: active_learning.strategy: bald needs one softmax per image", "entropy"),
    ("loop-ensemble-without-members", with_lines("active_learning: {pool: [{kind: images, path: data}], "
                                                 "strategy: ensemble}"),
     "6:65: active_learning.strategy: the ensemble has no members to train", "ensemble: {members: 3}"),
    ("loop-zero-shot-without-checkpoint", detection_with("active_learning: {pool: [{kind: images, path: data}], "
                                                         "annotator: zero_shot}"),
     "7:66: active_learning.annotator: the zero_shot annotator needs its local checkpoint", "model_path"),
    ("loop-zero-shot-for-classification", with_lines(
        "active_learning: {pool: [{kind: images, path: data}], annotator: zero_shot, zero_shot: {model_path: data}}"),
     "6:66: active_learning.annotator: the zero-shot grounding detector pre-labels boxes", "annotator: model"),
    ("loop-pool-missing", with_lines("active_learning: {pool: [{kind: captures, path: captured}]}"),
     "6:49: active_learning.pool[0].path: 'captured' does not exist", "autodl captures fetch"),
    ("loop-pool-kind-typo", with_lines("active_learning: {pool: [{kind: image, path: data}]}"),
     "active_learning.pool[0]", None),
    ("ensemble-detector-without-ensemble", with_lines("dependability: {ood: {detector: ensemble}}"),
     "6:33: dependability.ood.detector: the ensemble detector needs the data loop's ensemble",
     "active_learning.ensemble"),
    ("capture-destination-url", with_lines("serving: {capture: {destination: 'http://x'}}"),
     "serving.capture.destination", None),
    ("multilabel-min-accuracy", multilabel_with("dependability: {min_accuracy: 0.8}"),
     "7:31: dependability.min_accuracy: dependability.min_accuracy does not apply to task: multilabel", "min_tag_ap"),
    ("multilabel-sampler", multilabel_with("train: {balance: sampler}"),
     "7:18: train.balance: a sampler cannot draw every tag equally often", "balance: loss"),
    ("multilabel-select-by-accuracy", multilabel_with("train: {select_by: val_accuracy}"),
     "7:20: train.select_by: val_accuracy is not a tagger's figure", "val_map"),
    ("multilabel-digits-source", MULTILABEL.replace("{kind: photo_mosaics, images: 100}", "{kind: sklearn_digits}"),
     "6:14: data.sources[0].kind: sklearn_digits sources carry no tags", "manifest (path,tags)"),
    ("multilabel-loop-bald", multilabel_with("active_learning: {pool: [{kind: images, path: data}], strategy: bald}"),
     "7:65: active_learning.strategy: bald is not built for taggers", "per-tag uncertainty"),
    ("photo-mosaics-unknown-tag", MULTILABEL.replace("[animal, person]", "[animal, car]"),
     "3:10: classes: photo_mosaics (data.sources[0]) tags images with", "choose classes among"),
    ("photo-mosaics-in-classification", with_lines("    - {kind: photo_mosaics}"),
     "6:14: data.sources[1].kind: photo_mosaics tags each image with several classes", "task: multilabel"),
    ("min-tag-ap-in-classification", with_lines("dependability: {min_tag_ap: 0.3}"),
     "6:29: dependability.min_tag_ap: dependability.min_tag_ap applies to task: multilabel only", None),
    ("alias-bomb", with_lines(
        "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
        *(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6))),
     "too many values after expanding YAML aliases", "remove the anchors"),
]


@pytest.fixture
def repo_with_outputs(repo: Path, write_spec) -> Path:
    """A repo whose generated files already exist, plus a valid spec beside the broken one."""
    write_spec("good", GOOD)
    for name in ("params.yaml", "dvc.yaml"):
        (repo / name).write_text(f"# previous {name}\n", encoding="utf-8")
    return repo


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("case", "text", "expected", "hint"), CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_reported_and_nothing_is_written(
    case: str, text: str, expected: str, hint: str | None, repo_with_outputs: Path, write_spec, run_autodl
) -> None:
    write_spec("bad", text)
    before = _snapshot(repo_with_outputs)
    code, _out, err = run_autodl("compile")
    assert code == 2
    lines = err.splitlines()
    assert any(expected in line for line in lines), f"expected '{expected}' in:\n{err}"
    first = next(line for line in lines if expected in line)
    assert first.startswith("specs/bad.yaml:"), first
    if ":" in expected.split(" ")[0]:  # the case pins line and column
        assert first.startswith(f"specs/bad.yaml:{expected}"), first
    if hint is not None:
        assert hint in err
    assert "Traceback" not in err
    assert err.rstrip().endswith("no file was written")
    assert _snapshot(repo_with_outputs) == before


def test_every_error_of_a_file_is_reported_at_once(write_spec, run_autodl) -> None:
    write_spec("bad", with_lines("seed: x", "train: {epochs: 0}", "serving: {canary_percent: 101}"))
    code, _, err = run_autodl("compile")
    assert code == 2
    assert [line.split(": ")[1] for line in err.splitlines() if line.startswith("specs/")] == [
        "seed", "train.epochs", "serving.canary_percent"]
    assert "3 errors" in err


def test_errors_of_several_files_are_reported_together(write_spec, run_autodl) -> None:
    write_spec("one", with_lines("seed: x").replace("name: bad", "name: one"))
    write_spec("two", with_lines("seed: y").replace("name: bad", "name: two"))
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs/one.yaml:6:7: seed" in err
    assert "specs/two.yaml:6:7: seed" in err


def test_oversized_file_is_rejected_before_parsing(write_spec, run_autodl) -> None:
    write_spec("bad", BASE + "# " + "x" * (1024 * 1024) + "\n")
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs/bad.yaml:1:1: file is" in err
    assert "limited to 1048576 bytes" in err


def test_non_utf8_file_is_rejected(repo: Path, run_autodl) -> None:
    (repo / "specs" / "bad.yaml").write_bytes(BASE.encode() + b"# caf\xe9\n")
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs/bad.yaml:1:1: file is not UTF-8 text" in err


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_symlink_out_of_the_repository_is_rejected(repo: Path, tmp_path_factory, write_spec, run_autodl) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (repo / "data").mkdir()
    (repo / "data" / "raw").symlink_to(outside, target_is_directory=True)
    write_spec("bad", with_lines("    - {kind: image_folder, path: data/raw}"))
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs/bad.yaml:6:34: data.sources[1].path: 'data/raw' resolves outside the repository" in err


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_dangling_link_in_a_source_folder_is_named_before_dvc_meets_it(repo: Path, write_spec, run_autodl) -> None:
    """DVC fails to hash a folder holding a link to nothing, before any stage runs; compile says which."""
    (repo / "data" / "raw" / "cat").mkdir(parents=True)
    (repo / "data" / "raw" / "cat" / "gone.png").symlink_to("/nonexistent/gone.png")
    write_spec("bad", with_lines("    - {kind: image_folder, path: data/raw}"))
    code, _, err = run_autodl("compile")
    assert code == 2
    assert ("specs/bad.yaml:6:34: data.sources[1].path: 'data/raw' holds 1 dangling symbolic link(s): "
            "data/raw/cat/gone.png -> /nonexistent/gone.png") in err
    assert "delete the links or restore what they point to" in err
    assert not (repo / "dvc.yaml").exists()


def test_a_missing_source_folder_is_an_error_unless_dvc_fetches_it(repo: Path, write_spec, run_autodl) -> None:
    write_spec("bad", with_lines("    - {kind: image_folder, path: data/raw}"))
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs/bad.yaml:6:34: data.sources[1].path: 'data/raw' does not exist" in err
    assert "commit its .dvc file (e.g. data/raw.dvc)" in err
    assert not (repo / "dvc.yaml").exists()
    (repo / "data").mkdir()
    (repo / "data" / "raw.dvc").write_text("outs:\n- path: raw\n")  # what `dvc import` / `dvc add` commit
    code, _, err = run_autodl("compile")
    assert code == 0, err


def test_no_specs_is_an_error(run_autodl) -> None:
    code, _, err = run_autodl("compile")
    assert code == 2
    assert "specs:1:1: no spec files (*.yaml) found" in err



def test_unreadable_spec_is_a_diagnostic_not_a_traceback(repo: Path) -> None:
    (repo / "specs" / "dir.yaml").mkdir()  # reading it fails for every user, root included
    with pytest.raises(SpecError) as caught:
        load_spec(repo / "specs" / "dir.yaml", repo)
    assert caught.value.diagnostics[0].format() == "specs/dir.yaml:1:1: cannot read file (Is a directory)"
