"""Structured pruning of a whole detector toward a budget: backbone, feature pyramid and head channels.

torch-pruning's DepGraph finds what is coupled (a backbone level feeds an FPN lateral conv; the FPN's output
width is the head towers' input; the towers' GroupNorm ties channels in groups) and removes it together. The
per-class logit conv and the box and centerness convs keep their outputs: they are the network's contract.
The rounds are classification's (vision.compression.pruning.prune_rounds): prune a step, fine-tune (imitating
the trained detector when distilling), measure validation mAP50-95, stop at the first round within the budget
or before the first that breaks the accuracy floor (`compress.budget.max_accuracy_drop` read as a drop of
validation mAP50-95); this module gives them the detector's pruner, fine-tuning and score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch_pruning as tp

from core.spec.deployment import CompressSection
from core.spec.training import AugmentSection, TrainSection
from runtime.detections import Decoding
from vision.compression.pruning import IMPORTANCE, PruneResult, PruneRound, RoundHooks, Size, prune_rounds
from vision.detection.data import DetectionSplit
from vision.detection.distill import DetectionTeacher
from vision.detection.fit import DEFAULT_SAMPLING, fit_detector
from vision.detection.metrics import mean_average_precision
from vision.detection.model import Detector
from vision.detection.predict import predict_split
from vision.detection.tiles import TileSampling


def measure_detector(model: Detector) -> Size:
    width, height = model.config.input_wh
    macs, params = tp.utils.count_ops_and_params(model.eval(), torch.zeros(1, 3, height, width))
    return Size(int(params), int(macs))


def validation_map(model: Detector, split: DetectionSplit, decoding: Decoding) -> float:
    """COCO mAP50-95 of `model` on `split` (0 when nothing was found at all)."""
    figures = mean_average_precision(predict_split(model, split, decoding), split.boxes, split.labels,
                                     list(model.config.classes), decoding.max_detections)
    return max(float(figures["map"]), 0.0)


def contract_layers(model: Detector) -> list[torch.nn.Module]:
    """The head's output convs: their output channels are classes, box sides and centerness."""
    head = model.fcos.head
    return [head.classification_head.cls_logits, head.regression_head.bbox_reg, head.regression_head.bbox_ctrness]


DetectorBudget = Callable[[Detector, Size], bool]


@dataclass(frozen=True)
class PruningPlan:
    """How one track prunes and fine-tunes: the spec's compress and train sections, resolved for detectors."""

    compression: CompressSection
    finetune: TrainSection
    decoding: Decoding
    seed: int
    augment: AugmentSection | None = None
    min_visibility: float = 0.3
    tiles: TileSampling = DEFAULT_SAMPLING
    """How a tiled detector's fine-tuning samples tiles (the trained detector's decoding says whether it is)."""


def _pruner(model: Detector, compression: CompressSection) -> tp.pruner.MetaPruner:
    width, height = model.config.input_wh
    spread = compression.allocation == "global"
    # No round_to: the head towers' GroupNorm makes torch-pruning remove channels per norm group (32 groups of
    # fpn_channels / 32), and a multiple-of-8 rule on every group would forbid pruning the neck and head at all.
    return tp.pruner.MetaPruner(
        model, torch.zeros(1, 3, height, width), importance=IMPORTANCE[compression.importance](),
        pruning_ratio=compression.max_prune_ratio, iterative_steps=compression.prune_steps,
        ignored_layers=contract_layers(model), global_pruning=spread,
        max_pruning_ratio=max(0.9, compression.max_prune_ratio) if spread else 1.0)


def prune_detector(trained: Detector, train: DetectionSplit, val: DetectionSplit, plan: PruningPlan,
                   within_budget: DetectorBudget, floor: float, teacher: DetectionTeacher | None = None,
                   log: Callable[[PruneRound], None] | None = None) -> PruneResult:
    """A detector's pruning rounds (prune_rounds): its head's output convs kept, each round fine-tuned on the
    boxes (imitating `teacher` when given) and scored by validation mAP50-95. A budget with no size limit
    (params, MACs or latency) goes on to the smallest detector above the floor."""
    budget = plan.compression.budget
    smallest = budget.max_params is None and budget.max_macs is None and budget.max_latency_ms is None
    torch.manual_seed(plan.seed)

    def fine_tune(model: torch.nn.Module, step: int) -> torch.nn.Module:
        return fit_detector(model, train, val, plan.finetune, plan.decoding, plan.seed + step, plan.augment,
                            min_visibility=plan.min_visibility, teacher=teacher, tiles=plan.tiles,
                            progress=log is not None, label=f"compress: pruning round {step} fine-tuning").model

    hooks = RoundHooks(fine_tune, measure_detector, lambda model: validation_map(model, val, plan.decoding))
    return prune_rounds(trained, lambda model: _pruner(model, plan.compression), plan.compression.prune_steps,
                        hooks, within_budget, floor, smallest=smallest, progress=log)
