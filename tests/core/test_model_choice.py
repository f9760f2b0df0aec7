"""`model: auto`: what the train stage trains when the spec leaves the model to it, and the reasons it gives."""

from __future__ import annotations

import pytest

from core.model_choice import GMACS_AT_224, choose_model, estimated_latency_ms
from core.spec import ProjectSpec
from core.spec.training import ModelSection

FABRIC = [(250, 250)] * 40


def _model(**keys) -> ModelSection:
    return ModelSection.model_validate(keys)


def test_a_spec_without_a_model_or_with_model_auto_leaves_every_choice_to_the_data() -> None:
    raw = {"name": "fabric", "classes": ["a", "b"], "data": {"sources": [{"kind": "sklearn_digits"}]}}
    assert ProjectSpec.model_validate(raw).model == ProjectSpec.model_validate({**raw, "model": "auto"}).model
    choice = choose_model(ProjectSpec.model_validate(raw).model, FABRIC, "cpu-x86", None)
    assert (choice.backbone, choice.pretrained, choice.input_size_px) == (
        "tf_efficientnet_lite0", "efficientnet_lite0_imagenet", 256)
    assert choice.chosen == ("backbone", "pretrained", "input_size_px")
    assert choice.reasons[2] == ("input_size_px: 256: the median shorter side is 250 px: at 256 px no detail is "
                                 "lost to resizing")
    assert choice.pinned() == ("model: {backbone: tf_efficientnet_lite0, pretrained: efficientnet_lite0_imagenet, "
                               "input_size_px: 256}")


def test_pinned_keys_are_kept_and_only_the_auto_ones_are_chosen() -> None:
    pinned = choose_model(_model(backbone="resnet10t", pretrained=None, input_size_px=32), FABRIC, "cpu-x86", None)
    assert (pinned.backbone, pinned.pretrained, pinned.input_size_px, pinned.chosen) == ("resnet10t", None, 32, ())
    scratch = choose_model(_model(backbone="resnet18"), FABRIC, "cpu-x86", None)
    assert (scratch.pretrained, scratch.input_size_px) == (None, 256)
    assert "no offline ImageNet weights ship for resnet18" in scratch.reasons[0]
    lite2 = choose_model(_model(pretrained="efficientnet_lite2_imagenet"), FABRIC, "cpu-x86", None)
    assert lite2.backbone == "tf_efficientnet_lite2"  # the backbone the named weights were made for


@pytest.mark.parametrize(("sizes", "pretrained", "expected"), [
    ([(8, 8)] * 9, "auto", 64),  # tiny digits: enlarged to what ImageNet weights can see
    ([(8, 8)] * 9, None, 32),
    ([(1920, 1080)] * 9, "auto", 320),  # dash-cam frames: capped
    ([(100, 100)] * 85 + [(4000, 3000)] * 15, "auto", 96),  # the median, not the largest
])
def test_the_input_size_follows_the_typical_image_within_bounds(sizes, pretrained, expected) -> None:
    assert choose_model(_model(pretrained=pretrained, backbone="tf_efficientnet_lite0"), sizes, "cpu-x86",
                        None).input_size_px == expected


def test_a_latency_budget_lowers_the_input_size_until_the_estimate_fits() -> None:
    choice = choose_model(_model(), FABRIC, "cpu-x86", 5.0)
    assert choice.input_size_px < 256
    assert estimated_latency_ms(choice.backbone, choice.input_size_px, "cpu-x86") <= 5.0
    assert estimated_latency_ms(choice.backbone, choice.input_size_px + 32, "cpu-x86") > 5.0  # the largest that fits
    assert "lowered from 256 px so that the estimated latency on cpu-x86" in choice.reasons[-1]
    hopeless = choose_model(_model(), FABRIC, "cpu-x86", 0.2)
    assert (hopeless.backbone, hopeless.pretrained, hopeless.input_size_px) == ("resnet10t", None, 32)
    assert "still misses compress.budget.max_latency_ms 0.2" in hopeless.reasons[-1]
    unmeasured = choose_model(_model(), FABRIC, "cpu-arm", 0.2)  # no rate measured: the compress stage measures
    assert unmeasured.input_size_px == 256
    assert "no latency estimate" in unmeasured.reasons[-1]


def test_a_detector_keeps_its_own_input_size() -> None:
    choice = choose_model(_model(), FABRIC, None, None)
    assert choice.chosen == ("backbone", "pretrained")


def test_the_mac_table_matches_a_count_of_the_real_models() -> None:
    timm = pytest.importorskip("timm")
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    for backbone, gmacs in GMACS_AT_224.items():
        model = timm.create_model(backbone, num_classes=3).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, 224, 224))
        assert counter.get_total_flops() / 2e9 == pytest.approx(gmacs, rel=1e-3), backbone
