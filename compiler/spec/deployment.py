"""The `compress`, `target`, `dependability` and `serving` sections: what may ship, where, and how."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from compiler.spec._base import (
    DnsLabel,
    Fraction,
    Interval,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    RepoPath,
    SpecModel,
)


class CompressionBudget(SpecModel):
    """Limits the deployable model must meet; null leaves a limit unset."""

    max_params: PositiveInt | None = None
    max_macs: PositiveInt | None = None
    """Multiply-accumulate operations for one image."""
    max_latency_ms: PositiveFloat | None = None
    """Median batch-1 latency on the target, measured with ONNX Runtime."""
    max_accuracy_drop: Fraction = 0.01
    """Largest allowed validation-accuracy loss against the trained model (0.01 = one point)."""


class CompressSection(SpecModel):
    budget: CompressionBudget = CompressionBudget()
    methods: list[Literal["structured_prune", "distill", "quantize"]] = ["structured_prune", "distill", "quantize"]
    importance: Literal["group_magnitude", "group_taylor", "lamp", "random"] = "group_magnitude"
    """Channel-importance criterion for structured pruning."""
    student: str | None = None
    """Optional smaller timm backbone distilled from the trained model."""


class TargetSection(SpecModel):
    hardware: Literal["cpu-x86", "cpu-arm", "nvidia-t4", "jetson-orin"] = "cpu-x86"
    """Hardware profile: sets quantization precision, ONNX Runtime provider and Kubernetes resources."""


Corruption = Literal[
    "fog", "rain", "snow", "frost", "low_light", "motion_blur", "pixelate", "occlusion",
    "gaussian_noise", "elastic", "perspective", "rotation",
]


class Ood(SpecModel):
    detector: Literal["msp", "energy", "max_logit", "mahalanobis", "knn", "vim"] = "energy"
    min_auroc: Fraction = 0.9
    ood_sources: list[RepoPath] = []
    """Extra folders of images that must be recognised as out-of-distribution."""


class Robustness(SpecModel):
    corruptions: list[Corruption] = ["fog", "low_light", "motion_blur", "pixelate", "occlusion", "gaussian_noise"]
    severities: Annotated[list[Annotated[int, Interval(1, 5)]], Field(min_length=1)] = [1, 2, 3]
    max_accuracy_drop: Fraction = 0.15
    """Largest allowed mean accuracy loss on corrupted test images."""


class Calibration(SpecModel):
    max_ece: Fraction = 0.05
    """Largest allowed expected calibration error (15 bins) after temperature scaling."""


class Explain(SpecModel):
    gradcam_samples: NonNegativeInt = 16


class DependabilitySection(SpecModel):
    """Thresholds the deployable model must meet before the gate lets it reach serving."""

    min_accuracy: Fraction = 0.9
    ood: Ood = Ood()
    robustness: Robustness = Robustness()
    calibration: Calibration = Calibration()
    explain: Explain = Explain()


class ServingSection(SpecModel):
    """How the promoted model is served by KServe."""

    namespace: DnsLabel = "vision"
    min_replicas: NonNegativeInt = 1
    max_replicas: PositiveInt = 4
    canary_percent: Annotated[int, Interval(0, 100)] = 10
    """Share of traffic the new revision gets before it is rolled out fully; 0 disables canarying."""
    abstain_on_ood: bool = True
    """Answer 'abstained' instead of a class when the OOD detector fires."""
    storage_uri: Annotated[str, Field(pattern=r"^(s3|gs|pvc|https)://.+")] = "s3://models/autodl"
    """Where promoted models are stored (the DVC remote); models land under <uri>/<project>/<digest>."""
