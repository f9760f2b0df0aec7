"""train and evaluate on a tiny real slice of the digits: learning happens, runs repeat exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.spec.training import Hpo, SearchDimension, TrainSection
from stages.evaluate import evaluate, mistakes_gallery, top_confusions
from stages.train import TrainInputs, train_model, with_params
from stages.training import search_hyperparameters
from tests.conftest import TINY_CLASSES, train_stage_repo
from tests.stage_runs import run_stage_as_dvc
from vision.data.dataset import load_split, to_tensor
from vision.training.metrics import classification_metrics
from vision.training.model import ModelConfig, load_model, save_model

CLASSES = TINY_CLASSES


def test_metrics_on_a_hand_made_case_are_exact() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert metrics["accuracy"] == round(4 / 6, 6)
    assert metrics["per_class"]["a"] == {"precision": round(2 / 3, 6), "recall": round(2 / 3, 6),
                                         "f1": round(2 / 3, 6), "support": 3}
    assert metrics["per_class"]["b"] == {"precision": round(2 / 3, 6), "recall": 1.0, "f1": 0.8, "support": 2}
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["macro_f1"] == round((2 / 3 + 0.8 + 0.0) / 3, 6)


def _train(root: Path, seed: int = 0):
    config = ModelConfig("resnet10t", CLASSES, input_size_px=16)
    training = TrainSection(epochs=6, batch_size=16)
    train = load_split(root / "ingest", root / "split.csv", "train", CLASSES, 16)
    val = load_split(root / "ingest", root / "split.csv", "val", CLASSES, 16)
    return config, train_model(train, val, config, training, seed)


@pytest.mark.slow
def test_training_learns_and_is_deterministic(tiny_digits: Path, tmp_path: Path) -> None:
    config, first = _train(tiny_digits)
    _, second = _train(tiny_digits)
    assert len(first.history) == 6
    assert first.val_accuracy >= 0.9, first.history  # three easy digits: far above chance (0.33)
    save_model(first.model, config, tmp_path / "a")
    save_model(second.model, config, tmp_path / "b")
    for name in ("model.safetensors", "model.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    reloaded, reloaded_config = load_model(tmp_path / "a")
    assert reloaded_config == config
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in first.model.parameters())


@pytest.mark.slow
def test_the_kept_epoch_follows_train_select_by_and_the_log_says_which(tiny_digits: Path) -> None:
    from sklearn.metrics import f1_score

    config = ModelConfig("resnet10t", CLASSES, input_size_px=16)
    train = load_split(tiny_digits / "ingest", tiny_digits / "split.csv", "train", CLASSES, 16)
    val = load_split(tiny_digits / "ingest", tiny_digits / "split.csv", "val", CLASSES, 16)
    for select_by, key, better in (("val_loss", "val_loss", min), ("val_accuracy", "val_accuracy", max),
                                   ("val_macro_f1", "val_macro_f1", max)):
        result = train_model(train, val, config, TrainSection(epochs=5, batch_size=16, select_by=select_by), 0)
        best = better(row[key] for row in result.history)
        first = next(int(row["epoch"]) for row in result.history if row[key] == best)
        assert result.kept_epoch == first, (select_by, result.history)
        assert result.summary().startswith(f"kept epoch {first} of 5 (")
        assert f"train.select_by: {select_by}" in result.summary()
        predicted = result.model(to_tensor(val.images[:])).argmax(1).numpy()
        # the kept weights are that epoch's: their macro-F1 on the validation split is the row's, over the epoch
        assert f1_score(val.labels, predicted, average="macro") == pytest.approx(result.kept["val_macro_f1"], abs=1e-5)


def test_top_confusions_count_and_rank_the_mistakes() -> None:
    actual = ["a", "a", "a", "b", "b", "c", "c", "c"]
    predicted = ["a", "b", "b", "c", "a", "a", "b", "b"]
    assert top_confusions(actual, predicted) == [
        {"actual": "a", "predicted": "b", "count": 2}, {"actual": "c", "predicted": "b", "count": 2},
        {"actual": "b", "predicted": "a", "count": 1}, {"actual": "b", "predicted": "c", "count": 1},
        {"actual": "c", "predicted": "a", "count": 1}]
    assert top_confusions(actual, predicted, limit=1) == [{"actual": "a", "predicted": "b", "count": 2}]
    assert top_confusions(["a"], ["a"]) == []


@pytest.mark.slow
def test_evaluate_writes_metrics_and_a_gallery_of_the_most_confident_mistakes(tiny_digits: Path,
                                                                              tmp_path: Path) -> None:
    config, result = _train(tiny_digits)
    save_model(result.model, config, tmp_path / "model")
    evaluation = evaluate(tmp_path / "model", tiny_digits / "ingest", tiny_digits / "split.csv")
    wrong = sum(a != p for a, p in zip(evaluation.actual, evaluation.predicted, strict=True))
    assert evaluation.metrics["accuracy"] == round(1 - wrong / len(evaluation.actual), 6)
    assert mistakes_gallery(evaluation, tmp_path / "gallery.png", "tiny") == min(wrong, 24)
    assert (tmp_path / "gallery.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_hpo_of_two_tiny_trials_resumes_after_an_interruption(tiny_digits: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import stages.train as train_stage

    config = ModelConfig("resnet10t", CLASSES, input_size_px=16)
    training = TrainSection(epochs=2, batch_size=16, hpo=Hpo(trials=2, sampler="random", pruner="median",
                                                        space={"lr": SearchDimension(low=1e-3, high=1e-2)}))
    train = load_split(tiny_digits / "ingest", tiny_digits / "split.csv", "train", CLASSES, 16)
    val = load_split(tiny_digits / "ingest", tiny_digits / "split.csv", "val", CLASSES, 16)
    real_train_model, trained_lrs = train_stage.train_model, []

    def interrupt_second_trial(*args, **kwargs):
        trained_lrs.append(args[3].optimizer.lr)
        if len(trained_lrs) == 2:
            raise KeyboardInterrupt
        return real_train_model(*args, **kwargs)

    monkeypatch.setattr(train_stage, "train_model", interrupt_second_trial)
    with pytest.raises(KeyboardInterrupt):
        search_hyperparameters(TrainInputs(train, val, config, training, None, 0), tmp_path / "hpo")
    monkeypatch.setattr(train_stage, "train_model", real_train_model)
    resumed = search_hyperparameters(TrainInputs(train, val, config, training, None, 0), tmp_path / "hpo")
    assert resumed.new_trials == 1  # only the interrupted trial runs again
    assert resumed.best_params["lr"] in {trial.params["lr"] for trial in resumed.study.trials}
    completed = [t for t in resumed.study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["lr"] for t in completed) == sorted(trained_lrs)
    assert all(len(t.intermediate_values) == 2 for t in completed)  # per-epoch values reported for pruning


@pytest.mark.slow
def test_the_search_varies_backbone_size_freeze_and_balance_and_its_best_setting_trains(tiny_digits: Path,
                                                                                       tmp_path: Path) -> None:
    config = ModelConfig("resnet10t", CLASSES, input_size_px=16)
    space = {"backbone": SearchDimension(choices=["resnet10t", "mobilenetv3_small_050"]),
             "input_size_px": SearchDimension(choices=[16, 24]), "freeze": SearchDimension(choices=[0, 2, "all"]),
             "balance": SearchDimension(choices=["none", "sampler"])}
    training = TrainSection(epochs=2, batch_size=16, hpo=Hpo(trials=4, sampler="random", space=space))
    train = load_split(tiny_digits / "ingest", tiny_digits / "split.csv", "train", CLASSES, 16)
    val = load_split(tiny_digits / "ingest", tiny_digits / "split.csv", "val", CLASSES, 16)
    inputs = TrainInputs(train, val, config, training, None, 0, source=(tiny_digits / "ingest",
                                                                         tiny_digits / "split.csv"))
    found = search_hyperparameters(inputs, tmp_path / "hpo")
    tried = [t.params for t in found.study.trials]
    assert len(tried) == 4
    assert {p["input_size_px"] for p in tried} <= {16, 24}
    best_training, best_config = with_params(training, config, found.best_params)
    assert best_config.backbone == found.best_params["backbone"]
    assert best_config.input_size_px == found.best_params["input_size_px"]
    assert (best_training.freeze, best_training.balance) == (found.best_params["freeze"], found.best_params["balance"])
    sized_train, sized_val = inputs.splits_at(best_config.input_size_px)
    assert sized_train.images.shape[1] == best_config.input_size_px
    result = train_model(sized_train, sized_val, best_config, best_training.model_copy(update={"hpo": None}), 0,
                         progress=False)
    assert result.model(to_tensor(sized_val.images[:2])).shape == (2, len(CLASSES))


def test_a_search_over_input_sizes_always_tries_the_native_one(tmp_path: Path) -> None:
    from core.fsutil import write_csv
    from stages.train import with_native_size

    manifest = tmp_path / "manifest.csv"
    write_csv(manifest, [{"width": 250, "height": 250}] * 5 + [{"width": 64, "height": 48}] * 2)
    training = TrainSection(hpo=Hpo(space={"input_size_px": SearchDimension(choices=[128])}))
    widened = with_native_size(training, manifest)
    assert widened.hpo.space["input_size_px"].choices == [128, 256]
    assert with_native_size(widened, manifest) == widened  # already there
    assert with_native_size(TrainSection(hpo=Hpo()), manifest) == TrainSection(hpo=Hpo())  # size not searched


@pytest.mark.slow
def test_model_auto_trains_what_it_chose_and_the_report_says_why(tiny_digits: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import stages.train

    root = train_stage_repo(tmp_path / "repo", tiny_digits, epochs=1, model="")  # no model section
    run_stage_as_dvc("train", stages.train.main, "tiny", root)
    record = json.loads((root / "reports/tiny/train/metrics.json").read_text())["model"]
    # 8 x 8 digits: the cheapest pretrained backbone, enlarged to the least size its weights see objects at
    assert {k: record[k] for k in ("backbone", "pretrained", "input_size_px", "chosen")} == {
        "backbone": "tf_efficientnet_lite0", "pretrained": "efficientnet_lite0_imagenet", "input_size_px": 64,
        "chosen": ["backbone", "pretrained", "input_size_px"]}
    assert record["reasons"][2].startswith("input_size_px: 64: the median shorter side is 8 px, enlarged to 64 px")
    _, config = load_model(root / "models/tiny/train")
    assert (config.backbone, config.pretrained, config.input_size_px) == (
        "tf_efficientnet_lite0", "efficientnet_lite0_imagenet", 64)
    assert ("train: to keep this choice, pin it in the spec: model: {backbone: tf_efficientnet_lite0, "
            "pretrained: efficientnet_lite0_imagenet, input_size_px: 64}") in capsys.readouterr().out
