"""Compressing and exporting detectors: a pruned detector saved and loaded exactly, an export whose detections
differ from torch's failing the stage, and the choice of the deployable variant within the budget."""

from __future__ import annotations

import copy
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.spec.deployment import CompressionBudget, CompressSection
from core.spec.training import TrainSection
from runtime.detections import Decoding
from stages.detection import compress as compress_stage
from stages.detection.export import SCORING
from stages.runtime import StageFailure
from vision.compression.variants import NoVariantWithinBudget, Variant, choose
from vision.detection.compression import PruningPlan, measure_detector, prune_detector
from vision.detection.data import DetectionSplit
from vision.detection.model import Detector, DetectorConfig
from vision.detection.store import load_detector, save_detector
from vision.detection.student import initial_student, student_plan

CONFIG = DetectorConfig("resnet10t", ("a", "b"), (64, 64), (8, 16, 32), fpn_channels=32, head_convs=1)
DECODING = Decoding(CONFIG.input_wh, CONFIG.strides, 0.001, 0.6, 20)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> DetectionSplit:
    """Eight 80 x 64 images, each with one bright box of class a or b."""
    root = tmp_path_factory.mktemp("boxes")
    rng = np.random.default_rng(0)
    paths, boxes, labels = [], [], []
    for i in range(8):
        image = rng.integers(0, 90, (64, 80, 3), dtype=np.uint8)
        x, y = int(rng.integers(4, 40)), int(rng.integers(4, 28))
        image[y:y + 24, x:x + 30] = 200 + 40 * (i % 2)
        Image.fromarray(image).save(root / f"{i}.png")
        paths.append(f"{i}.png")
        boxes.append(np.asarray([[x, y, x + 30, y + 24]], np.float32))
        labels.append(np.asarray([i % 2], np.int64))
    return DetectionSplit(root, paths, boxes, labels)


def _detector(decisive: bool = False) -> Detector:
    """An untrained detector; `decisive` spreads its class logits so detections have clearly distinct scores
    (an untrained head scores every location about 0.01, and near-ties reorder under float rounding)."""
    torch.manual_seed(0)
    model = Detector(CONFIG).eval()
    if decisive:
        with torch.no_grad():
            head = model.fcos.head.classification_head.cls_logits
            head.weight.mul_(8.0)
            head.bias.fill_(-1.0)
            model.fcos.head.regression_head.bbox_ctrness.bias.fill_(0.0)
    return model


def test_a_pruned_detector_saves_and_loads_to_the_same_network(split: DetectionSplit, tmp_path: Path) -> None:
    compression = CompressSection(prune_steps=1, max_prune_ratio=0.5, budget={"max_accuracy_drop": 1.0})
    plan = PruningPlan(compression, TrainSection(epochs=1, batch_size=4), DECODING, seed=0)
    trained = _detector()
    track = prune_detector(trained, split, split, plan, lambda model, size: True, floor=-1.0)
    assert track.kept_steps == 1
    assert measure_detector(track.model).macs < measure_detector(trained).macs
    save_detector(track.model, DECODING, tmp_path, track.history, name="pruned")
    loaded, decoding = load_detector(tmp_path, "pruned")
    assert decoding == DECODING
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        for ours, theirs in zip(track.model.eval()(x), loaded(x), strict=True):
            assert torch.equal(ours, theirs)


def test_a_student_with_a_smaller_head_is_distilled_saved_and_offered_beside_the_trained_detector(
        split: DetectionSplit, tmp_path: Path) -> None:
    torch.manual_seed(0)
    trained = Detector(replace(CONFIG, fpn_channels=64, head_convs=2)).eval()
    compression = CompressSection(methods=["quantize"], student_head={"fpn_channels": 32, "head_convs": 1},
                                  budget={"max_accuracy_drop": 1.0})
    student = student_plan(compression, trained, TrainSection(epochs=1, batch_size=4))
    assert student is not None
    assert (student.config.backbone, student.config.fpn_channels, student.config.head_convs) == ("resnet10t", 32, 1)
    plan = PruningPlan(compression, TrainSection(epochs=1, batch_size=4), DECODING, seed=0)
    models, tracks, _ = compress_stage.compress_detector(trained, split, split, plan, student)
    assert set(models) == {"trained", "student"}
    assert tracks == {}
    assert measure_detector(models["student"]).macs < measure_detector(trained).macs
    described = compress_stage.describe(models, tracks, DECODING, split, split, 0.5, tmp_path)
    assert described["student"]["macs"] < described["trained"]["macs"]
    loaded, _ = load_detector(tmp_path, "student")
    assert loaded.config == models["student"].config
    assert student_plan(CompressSection(), trained, TrainSection()) is None, "opt-in"
    alone = student_plan(CompressSection(student="resnet18"), trained, TrainSection())
    assert alone is not None
    assert (alone.config.backbone, alone.config.fpn_channels, alone.config.head_convs) == ("resnet18", 64, 1)


def test_a_student_on_the_trained_backbone_starts_from_its_fine_tuned_weights_not_a_copy_it_shares() -> None:
    trained = _detector()
    with torch.no_grad():  # stands for fine-tuning: weights no fresh or ImageNet backbone would have
        for parameter in trained.fcos.backbone.body.parameters():
            parameter.add_(0.5)
    plan = student_plan(CompressSection(student_head={"fpn_channels": 32, "head_convs": 1}), trained, TrainSection())
    assert plan is not None
    student = initial_student(plan, trained)
    theirs = trained.fcos.backbone.body.state_dict()
    ours = student.fcos.backbone.body.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    with torch.no_grad():  # training the student must not move the teacher
        next(student.fcos.backbone.body.parameters()).add_(1.0)
    assert not torch.equal(next(student.fcos.backbone.body.parameters()), next(trained.fcos.backbone.body.parameters()))
    other = student_plan(CompressSection(student="resnet18"), trained, TrainSection())
    assert other is not None
    fresh = initial_student(other, trained)
    assert fresh.config.backbone == "resnet18", "another backbone cannot inherit the trained one's weights"


def test_an_export_whose_detections_differ_from_torch_fails_the_stage(split: DetectionSplit, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model = _detector(decisive=True)
    checked = compress_stage.describe({"trained": model}, {}, DECODING, split, split, 0.5, tmp_path / "good")
    assert checked["trained"]["onnx_parity"]["matched_share"] == 1.0
    assert checked["trained"]["onnx_parity"]["boxes"] >= 8
    real_export = compress_stage.export_detector

    def drifting_export(detector: Detector, path: Path) -> None:
        other = copy.deepcopy(detector)
        with torch.no_grad():
            other.fcos.head.regression_head.bbox_reg.weight.add_(0.5)
        real_export(other, path)

    monkeypatch.setattr(compress_stage, "export_detector", drifting_export)
    with pytest.raises(StageFailure, match="the ONNX export of trained disagrees with torch on the test split"):
        compress_stage.describe({"trained": model}, {}, DECODING, split, split, 0.5, tmp_path / "bad")


def _variant(name: str, latency: float, val_map: float, params: int = 1000) -> Variant:
    figures = {"val_map": val_map, "val_map50": val_map, "test_map": val_map, "test_map50": val_map}
    return Variant(name, name.rsplit("-", 1)[0], name.rsplit("-", 1)[1], "onnxruntime", True, params, params * 100,
                   params * 4, figures, latency, latency)


def test_the_fastest_variant_within_every_limit_is_deployed() -> None:
    rows = [_variant("trained-fp32", 30.0, 0.70), _variant("trained-int8", 12.0, 0.66),
            _variant("pruned-int8", 8.0, 0.60, params=400), _variant("pruned-fp32", 15.0, 0.69, params=400)]
    chosen, reason = choose(rows, CompressionBudget(max_accuracy_drop=0.05), 0.70, SCORING)
    assert chosen.variant == "trained-int8"  # pruned-int8 is faster but 10 points below the trained detector
    assert "fastest of 3 of 4 variants" in reason
    assert "with decoding and NMS" in reason
    assert "val mAP50-95 0.6600 vs 0.7000 trained" in reason
    chosen, _ = choose(rows, CompressionBudget(max_accuracy_drop=0.05, max_params=500), 0.70, SCORING)
    assert chosen.variant == "pruned-fp32"
    with pytest.raises(NoVariantWithinBudget, match=r"the closest is trained-int8: relax "
                       r"compress.budget.max_latency_ms to 12.000 .*the most accurate within the size limits is "
                       r"pruned-int8 .*: "
                       r"compress.budget.max_accuracy_drop 0.1000 would choose it"):
        choose(rows, CompressionBudget(max_accuracy_drop=0.05, max_latency_ms=9.0), 0.70, SCORING)


def test_an_int8_detector_below_the_floor_keeps_its_costliest_convolutions_in_fp32(split: DetectionSplit,
                                                                                    tmp_path: Path) -> None:
    import onnx

    from vision.detection.onnx import calibration_images, export_detector
    from vision.detection.quantize import MAX_FP32_LAYERS, quantize_within_floor

    fp32 = tmp_path / "fp32.onnx"
    export_detector(_detector(), fp32)
    images = calibration_images(split, CONFIG.input_wh, 8)

    def fp32_share(path: Path) -> float:
        """A stand-in for validation mAP that rises with every convolution left in fp32."""
        graph = onnx.load(str(path)).graph
        quantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
        convolutions = [n for n in graph.node if n.op_type == "Conv"]
        return sum(n.input[1] not in quantized for n in convolutions) / len(convolutions)  # input 1: weights

    reached = quantize_within_floor(fp32, tmp_path / "int8.onnx", images, images, 8, fp32_share, floor=-1.0)
    assert reached.fp32_layers == ()
    assert [count for count, _ in reached.tried] == [0]
    missed = quantize_within_floor(fp32, tmp_path / "int8.onnx", images, images, 8, fp32_share, floor=2.0)
    assert [count for count, _ in missed.tried] == [0, 1, 2, 4, MAX_FP32_LAYERS]
    assert len(missed.fp32_layers) >= MAX_FP32_LAYERS  # a head layer shared by the pyramid levels is several nodes
    shares = [share for _, share in missed.tried]
    assert all(before < after for before, after in itertools.pairwise(shares)), shares
    assert fp32_share(tmp_path / "int8.onnx") == pytest.approx(missed.score, abs=1e-6)
    onnx.checker.check_model(str(tmp_path / "int8.onnx"), full_check=True)


def test_a_gpu_target_s_fp16_detector_answers_like_its_fp32_file(tmp_path: Path) -> None:
    from vision.compression.onnx import convert_fp16
    from vision.detection.model import OUTPUT_NAMES
    from vision.detection.onnx import export_detector, session

    export_detector(_detector(), tmp_path / "fp32.onnx")
    convert_fp16(tmp_path / "fp32.onnx", tmp_path / "fp16.onnx")
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    fp32 = session(tmp_path / "fp32.onnx").run(list(OUTPUT_NAMES), {"input": x})
    fp16 = session(tmp_path / "fp16.onnx").run(list(OUTPUT_NAMES), {"input": x})  # inputs and outputs stay fp32
    for name, ours, theirs in zip(OUTPUT_NAMES, fp32, fp16, strict=True):
        assert theirs.dtype == np.float32, name
        assert np.abs(ours - theirs).max() < 0.02, name
