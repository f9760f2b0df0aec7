"""The settings compress derives from the spec before it trains anything."""

from __future__ import annotations

from core.profiles import PROFILES
from core.spec.deployment import CompressSection, Quantization
from core.spec.training import TrainSection
from vision.compression.pruning import finetune_epochs
from vision.compression.quantize import Int8Plan


def test_a_small_training_split_gets_enough_fine_tuning_steps() -> None:
    training = TrainSection(batch_size=32)
    settings = CompressSection(finetune_epochs=2, finetune_min_steps=100)
    assert finetune_epochs(settings, training, 300) == 10  # 10 steps an epoch
    assert finetune_epochs(settings, training, 10_000) == 2  # 313 steps an epoch: the epochs already suffice
    assert finetune_epochs(CompressSection(finetune_epochs=3), training, 50) == 3  # no minimum set


def test_int8_weight_bits_follow_the_target_unless_the_spec_says() -> None:
    x86, arm = PROFILES["cpu-x86"].int8_weight_bits, PROFILES["cpu-arm"].int8_weight_bits
    assert (x86, arm) == (7, 8)  # x86 fleets include CPUs without VNNI, where 8-bit weights saturate
    assert Int8Plan.from_spec(Quantization(), x86, 0.9).weight_bits == 7
    assert Int8Plan.from_spec(Quantization(weight_bits=8), x86, 0.9).weight_bits == 8
    plan = Int8Plan.from_spec(Quantization(max_fp32_layers=3, sensitivity_images=64), arm, 0.95)
    assert (plan.weight_bits, plan.floor, plan.max_fp32_layers, plan.sensitivity_images) == (8, 0.95, 3, 64)
