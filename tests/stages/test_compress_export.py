"""Compression and export on a tiny real model: budgets are met or refused clearly, ONNX matches torch."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from core.spec.deployment import CompressionBudget, CompressSection
from core.spec.training import TrainSection
from tests.conftest import TINY_CLASSES, tiny_resnet, tiny_split_data
from vision.compression.candidates import load_candidate, save_candidate
from vision.compression.onnx import convert_fp16, export_onnx, parity, predict, predict_outputs, session
from vision.compression.pruning import measure_size, prune_to_budget, track_line, track_record
from vision.compression.quantize import quantize_int8
from vision.compression.variants import NoVariantWithinBudget, Variant, choose, relax_message
from vision.data.dataset import Splits, to_tensor
from vision.tasks.classification import SCORING, distillation_loss
from vision.training.fit import Teacher, fit
from vision.training.model import ModelConfig, accuracy, build_model, predict_logits, save_model

pytestmark = pytest.mark.slow
SIZE = 16


@pytest.fixture(scope="module")
def splits(tiny_digits: Path):
    return tiny_split_data(tiny_digits, SIZE)


@pytest.fixture(scope="module")
def trained(splits) -> torch.nn.Module:
    train, val, _ = splits
    return tiny_resnet(train, val, SIZE, epochs=5)


def test_pruning_to_a_params_budget_lands_under_it_and_still_runs(trained, splits) -> None:
    train, val, _ = splits
    before = measure_size(trained, SIZE)
    limit = before.params // 4
    settings = CompressSection(budget=CompressionBudget(max_params=limit), prune_steps=4, max_prune_ratio=0.8,
                               finetune_epochs=1)
    result = prune_to_budget(trained, train, val, settings, TrainSection(epochs=1, batch_size=16), 0,
                             lambda model, size: size.params <= limit, floor=0.0)
    after = measure_size(result.model, SIZE)
    assert result.budget_met
    assert after.params <= limit < before.params
    assert after.params == result.rounds[-1].params
    assert [r.step for r in result.rounds] == list(range(1, len(result.rounds) + 1))
    assert result.model(torch.zeros(2, 3, SIZE, SIZE)).shape == (2, 3)
    assert measure_size(trained, SIZE) == before  # the trained model is left as it was


def test_a_step_below_the_accuracy_floor_is_undone(trained, splits) -> None:
    train, val, _ = splits
    settings = CompressSection(prune_steps=2, max_prune_ratio=0.9, finetune_epochs=1)
    result = prune_to_budget(trained, train, val, settings, TrainSection(epochs=1, batch_size=16), 0,
                             lambda model, size: False, floor=1.01)  # no model can reach it
    assert not result.budget_met
    assert len(result.rounds) == 1
    assert not result.rounds[0].above_floor
    assert measure_size(result.model, SIZE) == measure_size(trained, SIZE)
    assert (result.kept_steps, result.stopped_by) == (0, "accuracy_floor")
    record = track_record(result, settings, SCORING)
    assert record["floor"] == 1.01  # the floor the rounds were judged against, carried by the result
    line = track_line("pruned", record, SCORING)
    assert line.startswith(f"pruned undone: its first round reached val accuracy {result.rounds[0].score:.4f}")
    assert "below the accuracy floor 1.0100 after 1 fine-tuning epoch(s)" in line
    assert line.endswith("this track is the trained model, not a candidate of its own")


def test_distillation_loss_decreases_while_a_student_learns(trained, splits) -> None:
    train, val, _ = splits
    teacher = Teacher(trained, temperature=4.0, alpha=0.7)
    student = build_model(ModelConfig("resnet10t", TINY_CLASSES, SIZE))
    history = fit(student, train, val, TrainSection(epochs=4, batch_size=16), 1, teacher=teacher,
                  progress=False).history
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    same = torch.randn(4, 3)
    assert float(distillation_loss(same, same, same.argmax(1), temperature=4.0, alpha=1.0)) == pytest.approx(0.0,
                                                                                                          abs=1e-6)


def test_onnx_export_matches_torch_and_int8_is_smaller(trained, splits, tmp_path: Path) -> None:
    train, _, test = splits
    export_onnx(trained, SIZE, tmp_path / "fp32.onnx")
    check = parity(trained, tmp_path / "fp32.onnx", test.images)
    assert check.top1_agreement == 1.0
    assert check.max_abs_logit_diff < 1e-4
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", train.images[:100])
    assert (tmp_path / "int8.onnx").stat().st_size < 0.5 * (tmp_path / "fp32.onnx").stat().st_size
    assert not (tmp_path / "int8.pre.onnx").exists()
    assert accuracy(trained, test) > 0.6
    convert_fp16(tmp_path / "fp32.onnx", tmp_path / "fp16.onnx")  # what GPU targets get
    assert (tmp_path / "fp16.onnx").stat().st_size < 0.6 * (tmp_path / "fp32.onnx").stat().st_size
    fp16_logits = predict(session(tmp_path / "fp16.onnx"), test.images)
    fp32_logits = predict(session(tmp_path / "fp32.onnx"), test.images)
    assert fp16_logits.dtype == np.float32  # inputs and outputs stay fp32 for the server
    assert (fp16_logits.argmax(1) == fp32_logits.argmax(1)).mean() >= 0.98


def test_every_exported_file_also_gives_the_penultimate_features(trained, splits, tmp_path: Path) -> None:
    train, _, test = splits
    export_onnx(trained, SIZE, tmp_path / "fp32.onnx")
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", train.images[:100])
    with torch.inference_mode():
        x = to_tensor(test.images[:])
        expected = trained.forward_head(trained.forward_features(x), pre_logits=True).numpy()
    logits, features = predict_outputs(session(tmp_path / "fp32.onnx"), test.images)
    assert features.shape == (len(test.labels), trained.num_features)
    np.testing.assert_allclose(features, expected, atol=1e-4)
    np.testing.assert_allclose(logits, predict(session(tmp_path / "fp32.onnx"), test.images))
    _, int8_features = predict_outputs(session(tmp_path / "int8.onnx"), test.images)
    assert int8_features.shape == features.shape


def test_a_pruned_candidate_saved_without_pickle_loads_back_identical(trained, splits, tmp_path: Path) -> None:
    train, val, test = splits
    settings = CompressSection(prune_steps=2, max_prune_ratio=0.6, finetune_epochs=1)
    result = prune_to_budget(trained, train, val, settings, TrainSection(epochs=1, batch_size=16), 0,
                             lambda model, size: False, floor=0.0)
    assert result.history  # channels were removed
    config = ModelConfig("resnet10t", TINY_CLASSES, SIZE)
    save_candidate(result.model, config, result.history, tmp_path, "pruned")
    loaded, loaded_config = load_candidate(tmp_path, "pruned")
    assert loaded_config == config
    assert measure_size(loaded, SIZE) == measure_size(result.model, SIZE)
    x = to_tensor(test.images[:])
    torch.testing.assert_close(predict_logits(loaded, x), predict_logits(result.model, x))
    first = (tmp_path / "pruned.safetensors").read_bytes()
    save_candidate(loaded, config, result.history, tmp_path, "pruned")
    assert (tmp_path / "pruned.safetensors").read_bytes() == first


def _row(name: str, params: int, latency: float, val_acc: float, deployable: bool = True) -> Variant:
    return Variant(name, name, "fp32", "onnxruntime", deployable, params, 10 * params, 4 * params,
                   {"val_accuracy": val_acc, "test_accuracy": val_acc}, latency, latency / 2)


def test_choice_is_the_fastest_variant_within_budget() -> None:
    rows = [_row("trained-torch", 1000, 9.0, 0.99, deployable=False), _row("trained-fp32", 1000, 3.0, 0.99),
            _row("pruned-fp32", 300, 1.5, 0.985), _row("pruned-int8", 300, 0.7, 0.95)]
    chosen, reason = choose(rows, CompressionBudget(max_params=500, max_accuracy_drop=0.01), 0.99, SCORING)
    assert chosen.variant == "pruned-fp32"  # int8 is faster but loses 4 points
    assert reason.startswith("pruned-fp32: fastest of 1 of 3 variants within the budget")


def test_an_impossible_budget_says_which_limit_to_relax_and_by_how_much() -> None:
    rows = [_row("trained-fp32", 1000, 3.0, 0.99), _row("pruned-fp32", 300, 1.5, 0.985)]
    budget = CompressionBudget(max_params=200, max_latency_ms=1.0, max_accuracy_drop=0.01)
    with pytest.raises(NoVariantWithinBudget) as failure:
        choose(rows, budget, 0.99, SCORING)
    assert str(failure.value) == relax_message(rows, budget, 0.99, SCORING)
    assert str(failure.value).startswith(
        "no variant meets compress.budget; the closest is pruned-fp32: relax compress.budget.max_params to 300 "
        "(+100) and compress.budget.max_latency_ms to 1.500 (+0.500 ms)")


def test_when_the_accuracy_floor_stopped_pruning_the_failure_says_so_before_relaxing_a_size_limit() -> None:
    rows = [_row("trained-fp32", 1000, 3.0, 0.99), _row("pruned-fp32", 800, 2.5, 0.99)]
    budget = CompressionBudget(max_macs=100, max_accuracy_drop=0.005)
    tracks = {"pruned": {"budget_met": False, "stopped_by": "accuracy_floor", "kept_steps": 1, "floor": 0.985,
                         "finetune_epochs": 2, "prune_steps": 5,
                         "last_round": {"step": 2, "params": 600, "macs": 90, "val_accuracy": 0.91,
                                        "within_budget": True, "above_floor": False}}}
    with pytest.raises(NoVariantWithinBudget) as failure:
        choose(rows, budget, 0.99, SCORING, tracks)
    message = str(failure.value)
    assert message.startswith(
        "no variant meets compress.budget; pruning stopped at the accuracy floor, not at the size budget: pruned "
        "round 2 reached val accuracy 0.9100 (600 params, 90 MACs), below the floor 0.9850 (trained val accuracy "
        "0.9900 minus compress.budget.max_accuracy_drop 0.005); give each round more fine-tuning "
        "(compress.finetune_epochs, now 2), prune in more, smaller rounds (compress.prune_steps, now 5) or allow a "
        "larger drop (compress.budget.max_accuracy_drop). the closest is pruned-fp32: otherwise relax "
        "compress.budget.max_macs")
    # a track that ran out of steps, not accuracy, leaves the plain advice
    tracks["pruned"]["stopped_by"] = "steps"
    assert relax_message(rows, budget, 0.99, SCORING, tracks).startswith(
        "no variant meets compress.budget; the closest is pruned-fp32: relax compress.budget.max_macs")


def test_the_export_stage_refuses_an_impossible_budget_and_writes_nothing(trained, splits, tiny_digits: Path,
                                                                          tmp_path: Path, capsys) -> None:
    from stages.export import main
    from tests.stage_runs import run_stage_as_dvc

    described = _export_project(tmp_path, trained, splits, tiny_digits, {"max_params": 10})
    with pytest.raises(SystemExit) as exit_code:
        run_stage_as_dvc("export", main, "p", tmp_path)
    assert exit_code.value.code == 1
    message = capsys.readouterr().err
    params = described["trained"]["params"]
    assert "no variant meets compress.budget; the closest is trained-fp32: relax compress.budget.max_params to " \
           f"{params:,} (+{params - 10:,})" in message
    assert not (tmp_path / "models/p/export").exists()
    assert not (tmp_path / "reports").exists()


def test_a_student_backbone_is_distilled_when_the_spec_names_one(trained, splits, tmp_path: Path) -> None:
    from stages.compress import compress

    _, val, _ = splits
    settings = CompressSection(methods=["distill"], student="resnet10t")
    models, tracks = compress(trained, ModelConfig("resnet10t", TINY_CLASSES, SIZE), Splits(*splits), settings,
                              TrainSection(epochs=3, batch_size=16), None, 0, tmp_path)
    assert set(models) == {"trained", "student"}
    assert tracks == {}
    assert models["student"] is not trained
    assert accuracy(models["student"], val) > 0.6  # three digits: chance is 0.33


def test_a_failing_budget_names_the_best_trade_offs_and_the_values_that_reach_them() -> None:
    rows = [_row("trained-fp32", 1000, 3.0, 0.99), _row("pruned-fp32", 400, 1.5, 0.97),
            _row("pruned-int8", 400, 0.6, 0.95)]
    budget = CompressionBudget(max_macs=5000, max_accuracy_drop=0.005)  # MACs are 10 x params in _row
    with pytest.raises(NoVariantWithinBudget) as failure:
        choose(rows, budget, 0.99, SCORING)
    message = str(failure.value)
    assert ("best trade-offs measured: the smallest variant within the accuracy limit is trained-fp32 (1,000 params, "
            "10,000 MACs, 3.000 ms, val accuracy 0.9900): compress.budget.max_macs 10,000 would choose it; the most "
            "accurate within the size limits is pruned-fp32 (400 params, 4,000 MACs, 1.500 ms, val accuracy 0.9700): "
            "compress.budget.max_accuracy_drop 0.0200 would choose it") in message
    nothing_small = CompressionBudget(max_macs=100)
    with pytest.raises(NoVariantWithinBudget) as failure:
        choose(rows, nothing_small, 0.99, SCORING)
    assert "no variant is within the size limits: prune further" in str(failure.value)


def test_sparse_and_quantization_aware_candidates_save_and_load_back(trained, splits, tmp_path: Path) -> None:
    from stages.compress import compress, describe
    from vision.compression.qat import quantization_aware_finetune

    train, val, test = splits
    settings = CompressSection(methods=["sparse_train"], finetune_epochs=1, budget={"max_accuracy_drop": 1.0},
                               sparse_training={"epochs": 2, "regularisation": 0.01})
    config = ModelConfig("resnet10t", TINY_CLASSES, SIZE)
    models, tracks = compress(trained, config, Splits(*splits), settings, TrainSection(epochs=1, batch_size=16),
                              None, 0, tmp_path)
    assert list(tracks) == ["sparse"]
    assert len(tracks["sparse"].rounds) == 1
    assert set(models) == {"trained", "sparse"}
    models["qat"] = quantization_aware_finetune(trained, train, val, TrainSection(epochs=1, batch_size=16), 0, 7)
    described = describe(models, config, tracks, None, val, test, tmp_path)
    for name in models:
        loaded, _ = load_candidate(tmp_path, name)
        assert measure_size(loaded, SIZE) == measure_size(models[name], SIZE)
        x = to_tensor(test.images[:])
        torch.testing.assert_close(predict_logits(loaded, x), predict_logits(models[name], x))
        assert described[name]["onnx_parity"]["top1_agreement"] == 1.0


def _export_project(root: Path, trained, splits, tiny_digits: Path, budget: dict) -> dict:
    """A repository holding what the export stage reads: params, ingest, the pruned split, the trained model and
    the compress stage's candidates."""
    import shutil

    from ruamel.yaml import YAML

    from core.spec import ProjectSpec
    from stages.compress import describe

    _, val, test = splits
    spec = ProjectSpec.model_validate({"name": "p", "classes": TINY_CLASSES, "data": {"sources": [
        {"kind": "sklearn_digits"}]}, "compress": {"budget": budget}}, strict=False)
    YAML(typ="safe").dump({"p": spec.model_dump(mode="json")}, root / "params.yaml")
    shutil.copytree(tiny_digits / "ingest", root / "data/p/ingest")
    (root / "data/p/prune").mkdir(parents=True)
    shutil.copy(tiny_digits / "split.csv", root / "data/p/prune/split.csv")
    config = ModelConfig("resnet10t", TINY_CLASSES, SIZE)
    compress_dir = root / "models/p/compress"
    compress_dir.mkdir(parents=True)
    described = describe({"trained": trained}, config, {}, None, val, test, compress_dir)
    (compress_dir / "variants.json").write_text(json.dumps({"model": asdict(config), "variants": described}))
    save_model(trained, config, root / "models/p/train")
    return described


BUSY = """\
import torch
torch.set_num_threads(2)
a = torch.randn(384, 384)
while True:
    a = torch.tanh(a @ a)
"""


def test_the_deployable_choice_is_the_same_with_a_busy_process_competing_for_the_cpu(
        trained, splits, tiny_digits: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from stages.export import main
    from tests.stage_runs import run_stage_as_dvc

    choices = []
    for run, busy in (("idle", False), ("busy", True)):
        root = tmp_path / run
        root.mkdir()
        _export_project(root, trained, splits, tiny_digits, {"max_accuracy_drop": 0.2})
        competitor = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
        try:
            run_stage_as_dvc("export", main, "p", root)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
        choices.append(json.loads((root / "reports/p/export/choice.json").read_text()))
    idle, busy = choices
    assert idle["chosen"] == busy["chosen"]
    assert (root / "models/p/export/model.onnx").read_bytes() == (tmp_path / "idle/models/p/export/model.onnx"
                                                                  ).read_bytes()
    evidence = busy["latency_evidence"]
    assert set(evidence) == {v["variant"] for v in busy["variants"]}
    assert all(len(e["cpu_ms_per_round"]) == len(e["wall_ms_per_round"]) == 7 for e in evidence.values())
