"""The multi-label task: its loss, positive weights, per-tag thresholds and metrics, and a real fit through the
shared engine on tags of real digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vision.data.dataset import load_tagged_split
from vision.data.strata import MIXED, NEGATIVE, rarest_label_strata
from vision.data.tags import multi_hot, parse_tags, tag_rows
from vision.tasks import task
from vision.tasks.multilabel import (
    DEFAULT_THRESHOLD,
    TASK,
    choose_thresholds,
    distillation_loss,
    positive_weights,
    sigmoid,
    tag_metrics,
)

TAGS = ["corner", "round", "straight"]
TAGS_OF_DIGIT = {"0": ["round"], "1": ["straight"], "7": ["corner", "straight"]}
"""What each of the tiny digits' classes looks like: the tags are facts about the picture, several per image."""


def test_the_registry_names_the_multilabel_task() -> None:
    assert task("multilabel") is TASK
    assert TASK.primary_figure == "val_map"
    assert set(TASK.selection) == {"val_loss", "val_map", "val_macro_f1"}


def test_a_rare_tag_weighs_its_positives_by_its_negatives() -> None:
    targets = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 1, 1]], dtype=np.float32)
    weights = positive_weights(targets, 3)
    assert weights.tolist() == [3.0, 3.0, 1.0]  # 3 negatives per positive; a tag on every image weighs 1
    logits = torch.tensor([[0.3, -1.0, 2.0], [1.5, 0.2, -0.5], [0.0, 0.0, 0.0], [-2.0, 1.0, 0.5]])
    expected = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(targets), pos_weight=weights)
    assert float(TASK.loss(logits, torch.from_numpy(targets), 0.0, weights)) == pytest.approx(float(expected))


def test_label_smoothing_pulls_targets_toward_one_half() -> None:
    logits, targets = torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # at logit 0 every probability is 0.5: smoothing toward 0.5 cannot change the loss there
    assert float(TASK.loss(logits, targets, 0.2)) == pytest.approx(float(TASK.loss(logits, targets, 0.0)))
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0]])
    assert float(TASK.loss(logits, targets, 0.2)) > float(TASK.loss(logits, targets, 0.0))


def test_a_student_equal_to_its_teacher_gets_no_gradient_from_imitation() -> None:
    student = torch.tensor([[0.5, -2.0, 1.0]], requires_grad=True)
    teacher = student.detach().clone()
    distillation_loss(student, teacher, torch.tensor([[1.0, 0.0, 0.0]]), temperature=4.0, alpha=1.0).backward()
    assert student.grad is not None
    assert float(student.grad.abs().max()) < 1e-7


def test_each_tag_gets_the_threshold_with_its_best_validation_f1() -> None:
    targets = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    probabilities = np.array([[0.30, 0.9], [0.25, 0.8], [0.20, 0.7], [0.05, 0.1]])
    thresholds = choose_thresholds(targets, probabilities)
    assert 0.20 < thresholds[0] < 0.25  # the two positives in, the negatives out: F1 1.0 where 0.5 gives 0.0
    assert thresholds[1] == DEFAULT_THRESHOLD  # no positive image: nothing to choose on
    at_half = tag_metrics(targets, probabilities, ["a", "b"])
    chosen = tag_metrics(targets, probabilities, ["a", "b"], thresholds)
    assert at_half["per_class"]["a"]["f1"] == 0.0
    assert chosen["per_class"]["a"]["f1"] == 1.0
    assert chosen["per_class"]["a"]["threshold"] == pytest.approx(thresholds[0], abs=1e-6)


def test_metrics_leave_a_tag_without_positives_out_of_map() -> None:
    targets = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 0]])
    probabilities = np.array([[0.9, 0.2, 0.8], [0.1, 0.1, 0.7], [0.8, 0.3, 0.2]])
    figures = tag_metrics(targets, probabilities, ["a", "b", "c"])
    assert figures["per_class"]["b"]["ap"] is None
    assert figures["map"] == 1.0  # a and c are ranked perfectly; b has nothing to rank
    assert figures["exact_match"] == 1.0
    assert figures["macro_f1"] == pytest.approx(2 / 3, abs=1e-6)


def test_sigmoid_is_stable_for_large_logits() -> None:
    values = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    assert values.tolist() == [0.0, 0.5, 1.0]


def test_tags_parse_into_distinct_sorted_rows_and_multi_hot_targets() -> None:
    assert parse_tags(" rain|night | rain||") == ["night", "rain"]
    rows = tag_rows({"b.png": ["rain"], "a.png": ["night", "rain"], "c.png": []})
    assert rows == [{"path": "a.png", "tag": "night"}, {"path": "a.png", "tag": "rain"},
                    {"path": "b.png", "tag": "rain"}]
    assert multi_hot(["c.png", "a.png"], rows, ["night", "rain"]).tolist() == [[0, 0], [1, 1]]
    with pytest.raises(ValueError, match="'rain' is not among"):
        multi_hot(["a.png"], rows, ["night"])


def test_strata_of_tagged_images_are_their_rarest_tag() -> None:
    tags = {f"{i}.png": ["common", "rare"] if i < 3 else ["common"] for i in range(9)} | {"x.png": [], "y.png": [],
                                                                                           "z.png": []}
    counts = {"common": 9, "rare": 3}
    strata = rarest_label_strata(tags, counts)
    assert [strata[f"{i}.png"] for i in range(4)] == ["rare", "rare", "rare", "common"]
    assert strata["x.png"] == NEGATIVE
    lone = rarest_label_strata({"a": ["odd"], **{f"{i}": ["common"] for i in range(5)}}, {"odd": 1, "common": 5})
    assert MIXED not in lone.values()
    assert lone["a"] == "common"


def _tagged_splits(tiny_digits: Path, tmp_path: Path, size_px: int):
    lines = (tiny_digits / "split.csv").read_text().splitlines()[1:]
    rows = tag_rows({line.split(",")[0]: TAGS_OF_DIGIT[line.split(",")[1]] for line in lines})
    tags_csv = tmp_path / "tags.csv"
    tags_csv.write_text("path,tag\n" + "".join(f"{r['path']},{r['tag']}\n" for r in rows))
    return [load_tagged_split(tiny_digits / "ingest", tags_csv, tiny_digits / "split.csv", name, TAGS, size_px)
            for name in ("train", "val", "test")]


@pytest.fixture(scope="module")
def tagger(tiny_digits: Path, tmp_path_factory: pytest.TempPathFactory):
    """A ResNet-10t tagger fitted by the shared engine on the tiny digits' tags, with its splits."""
    from core.spec.training import TrainSection
    from vision.training.fit import fit
    from vision.training.model import ModelConfig, build_model

    train, val, test = _tagged_splits(tiny_digits, tmp_path_factory.mktemp("tags"), 16)
    config = ModelConfig("resnet10t", TAGS, 16)
    result = fit(build_model(config), train, val,
                 TrainSection(epochs=6, batch_size=16, balance="loss", select_by="val_map"), 0, progress=False,
                 task=TASK)
    return result, config, (train, val, test)


def test_the_shared_engine_fits_a_tagger_and_its_thresholds_carry_to_test(tagger) -> None:
    from vision.training.fit import history_fields
    from vision.training.model import predict_images

    result, _, (train, val, test) = tagger
    assert train.labels.shape == (len(train.paths), 3)
    assert train.labels.sum(axis=1).max() == 2
    assert tuple(result.history[0]) == history_fields(TASK)  # the tagger's own figures, none borrowed
    assert result.score == result.kept["val_map"] >= 0.9, result.history
    assert "mAP" in result.summary()
    assert "highest validation mAP over tags" in result.summary()
    val_logits = predict_images(result.model, val.images).numpy()
    thresholds = choose_thresholds(val.labels, sigmoid(val_logits))
    figures = tag_metrics(test.labels, sigmoid(predict_images(result.model, test.images).numpy()), TAGS, thresholds)
    assert figures["map"] >= 0.9, figures
    assert figures["macro_f1"] >= 0.8, figures


def test_compression_and_int8_of_a_tagger_are_scored_by_map(tagger, tmp_path: Path) -> None:
    from core.spec.deployment import CompressSection
    from core.spec.training import TrainSection
    from stages.compress import compress, describe
    from stages.export import ClassifierExport
    from stages.exporting import build_variants
    from vision.compression.quantize import Int8Plan
    from vision.data.dataset import Splits
    from vision.training.model import save_model, task_score

    result, config, (train, val, test) = tagger
    settings = CompressSection(methods=["structured_prune", "quantize"], prune_steps=2, max_prune_ratio=0.5,
                               finetune_epochs=1)
    models, tracks = compress(result.model, config, Splits(train, val, test), settings,
                              TrainSection(epochs=2, batch_size=16), None, 0, tmp_path, task=TASK)
    floor = task_score(result.model, val, TASK) - settings.budget.max_accuracy_drop
    assert tracks["pruned"].floor == pytest.approx(floor)  # the floor is read on validation mAP, not accuracy
    assert all(0.0 <= r.score <= 1.0 for r in tracks["pruned"].rounds)
    described = describe(models, config, tracks, None, val, test, tmp_path, TASK)
    assert described["trained"]["torch_val_map"] == pytest.approx(task_score(result.model, val, TASK), abs=1e-6)
    plan = Int8Plan(8, floor=described["trained"]["torch_val_map"] - 0.05, max_fp32_layers=2)
    measuring = ClassifierExport(result.model, tmp_path, described["trained"], {"input_size_px": 16,
                                 "mean": [0.5] * 3, "std": [0.5] * 3, "classes": TAGS}, val, test, train, plan, TASK)
    save_model(result.model, config, tmp_path)  # the baseline row reads the size of the weights file
    (tmp_path / "work").mkdir()
    rows = build_variants(tmp_path, {"trained": described["trained"]}, measuring, tmp_path / "work", "int8")
    assert [r.variant for r in rows] == ["trained-torch", "trained-fp32", "trained-int8"]
    fp32, int8 = rows[1], rows[2]
    assert set(fp32.figures) == {"val_map", "test_map"}
    assert fp32.figures["val_map"] == pytest.approx(described["trained"]["torch_val_map"], abs=1e-4)
    assert int8.figures["val_map"] >= plan.floor or int8.fp32_layers  # the floor is held, or layers were kept


def test_a_tagger_s_temperature_undoes_an_overconfident_scale() -> None:
    from vision.dependability.tag_calibration import (
        fit_tag_temperature,
        tag_calibration_error,
        tag_reliability_rows,
    )

    rng = np.random.default_rng(0)
    honest = rng.normal(0.0, 1.5, size=(4000, 3))
    targets = (rng.random(honest.shape) < sigmoid(honest)).astype(np.float32)  # tags drawn at the said odds
    overconfident = honest * 3.0
    temperature = fit_tag_temperature(overconfident, targets)
    assert temperature == pytest.approx(3.0, rel=0.1)
    assert tag_calibration_error(overconfident, targets, temperature) < 0.5 * tag_calibration_error(overconfident,
                                                                                                    targets)
    rows = tag_reliability_rows(overconfident, targets, temperature)
    assert sum(row["count"] for row in rows) == targets.size  # every image-tag pair in one bin, 0 included
