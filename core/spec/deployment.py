"""The `compress`, `target`, `dependability` and `serving` sections: what may ship, where, and how."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.spec._base import (
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
    """Largest allowed number of parameters."""
    max_macs: PositiveInt | None = None
    """Multiply-accumulate operations for one image."""
    max_latency_ms: PositiveFloat | None = None
    """Median batch-1 latency with ONNX Runtime on one thread of the machine that runs the export stage."""
    max_accuracy_drop: Fraction = 0.01
    """Largest allowed validation-accuracy loss against the trained model (0.01 = one point); for detectors,
    the loss of validation mAP50-95."""


class Distillation(SpecModel):
    """Knowledge distillation from the trained model (Hinton et al. 2015)."""

    temperature: Annotated[float, Interval(1.0, 20.0)] = 4.0
    """Softens teacher and student logits before the KL term."""
    alpha: Annotated[float, Interval(0.0, 1.0)] = 0.7
    """Weight of the KL term; the cross-entropy on labels gets 1 - alpha."""


class Quantization(SpecModel):
    """How int8 quantization keeps accuracy, for targets whose precision is int8."""

    weight_bits: Literal["auto", 7, 8] = "auto"
    """Bits of the int8 weights: `auto` takes the target's (7 on cpu-x86, where CPUs without VNNI saturate
    8-bit weights; 8 elsewhere)."""
    max_fp32_layers: Annotated[int, Interval(0, 256)] = 8
    """When an int8 variant misses `budget.max_accuracy_drop`, the layers whose quantization costs most (ranked
    one layer at a time on validation images) stay fp32, fewest first and at most this many; 0 never."""
    sensitivity_images: Annotated[int, Interval(8, 10_000)] = 128
    """Validation images the per-layer sensitivity ranking is measured on."""
    qat_epochs: Annotated[int, Interval(0, 100)] = 2
    """Quantization-aware fine-tuning epochs of the `qat` candidate, trained only when int8 of the trained model
    misses the accuracy budget even with `max_fp32_layers` kept in fp32; 0 never."""


class SparseTraining(SpecModel):
    """Group-sparsity training before pruning (`methods: [sparse_train]`): the regulariser drives whole
    channel groups toward zero, and those groups are then removed."""

    epochs: PositiveInt = 3
    """Training epochs with the regulariser, starting from the trained model."""
    regularisation: Annotated[float, Interval(0.0, 1000.0, lo_open=True)] = 10.0
    """Strength of torch-pruning's group regulariser, applied after each optimizer step: a group shrinks by
    learning rate x this x its pressure of itself per step. Measured on the digits ResNet-10t (3 epochs, lr
    0.002): 10 removes 1% of the MACs, 15 a quarter, 20 three quarters at 5 points of accuracy before the
    fine-tune, 30 collapses the model; scale it inversely with the learning rate and the number of steps."""
    weakest_pressure: Annotated[float, Interval(1.0, 64.0)] = 16.0
    """How much harder the weakest groups are pushed than the strongest (torch-pruning's `alpha`, 16 by
    default there). With BatchNorm after each convolution the weights' scale does not change the output, so
    with 1 (plain group decay) every group shrinks alike and none reaches zero first."""
    zero_below: Annotated[float, Interval(0.0, 1.0, lo_open=True, hi_open=True)] = 0.05
    """A channel group counts as driven to zero when its norm is below this share of the largest group norm
    of its layer."""


class StudentHead(SpecModel):
    """A smaller detector head: most of a single-stage detector's MACs are its head towers at the finest level."""

    fpn_channels: Literal[32, 64, 96, 128, 192, 256] = 64
    """Channels of the student's feature pyramid and head."""
    head_convs: Annotated[int, Interval(1, 4)] = 1
    """Convolutions in each of the student's head towers."""


class CompressSection(SpecModel):
    """Shrink the trained model to the budget, export it to ONNX and quantize it for the target."""

    budget: CompressionBudget = CompressionBudget()
    """Limits the deployable model must meet."""
    methods: list[Literal["structured_prune", "distill", "quantize", "sparse_train"]] = [
        "structured_prune", "distill", "quantize"]
    """Compression methods to try: structured channel pruning, distillation during its fine-tuning,
    quantization to the target's precision, and group-sparsity training whose zeroed groups are pruned."""
    importance: Literal["group_magnitude", "group_taylor", "lamp", "random"] = "group_magnitude"
    """Channel-importance criterion for structured pruning."""
    prune_steps: Annotated[int, Interval(1, 50)] = 6
    """Prune -> fine-tune rounds on the way to `max_prune_ratio`; pruning stops at the first round that meets
    the budget."""
    max_prune_ratio: Annotated[float, Interval(0.0, 1.0, lo_open=True, hi_open=True)] = 0.9
    """Share of each layer's channels removed after the last round."""
    allocation: Literal["uniform", "global"] = "uniform"
    """How a round's channel cut is spread: the same share of every layer, or by importance ranked across
    layers (layers that matter less lose more, none more than `max_prune_ratio`)."""
    finetune_epochs: PositiveInt = 3
    """Fine-tuning epochs after each pruning round."""
    finetune_min_steps: Annotated[int, Interval(0, 1_000_000)] = 0
    """At least this many optimizer steps in each fine-tune (pruning rounds, sparse training's): a small
    training split gets more epochs than `finetune_epochs` (300 images at batch 32 are 10 steps an epoch)."""
    distillation: Distillation = Distillation()
    """Teacher settings, used when `methods` lists `distill`."""
    student: str | None = None
    """Optional smaller timm backbone distilled from the trained model for `train.epochs` epochs (a detector's
    student may keep the trained backbone and shrink its head instead: `student_head`)."""
    student_head: StudentHead | None = None
    """Detection only: the student detector's feature pyramid and head (with `student`, or the trained
    backbone when `student` is null), distilled from the trained detector and offered beside the pruned ones."""
    calibration_images: Annotated[int, Interval(100, 100_000)] = 200
    """Training images that calibrate int8 quantization, spread over the whole split (its first images are often
    one class: a split file lists the data class folder by class folder)."""
    quantization: Quantization = Quantization()
    """What int8 does to keep accuracy: weight bits, layers kept in fp32, quantization-aware fine-tuning."""
    sparse_training: SparseTraining = SparseTraining()
    """Settings of the `sparse_train` method."""


class TargetSection(SpecModel):
    hardware: Literal["cpu-x86", "cpu-arm", "nvidia-t4", "jetson-orin"] = "cpu-x86"
    """Hardware profile: sets quantization precision, ONNX Runtime provider and Kubernetes resources."""


Corruption = Literal[
    "fog", "rain", "snow", "frost", "low_light", "motion_blur", "pixelate", "occlusion",
    "gaussian_noise", "elastic", "perspective", "rotation",
]


class Ood(SpecModel):
    detector: Literal["auto", "msp", "energy", "max_logit", "mahalanobis", "knn", "vim", "ensemble"] = "auto"
    """Post-hoc out-of-distribution score used for abstaining: on the logits (msp, energy, max_logit), on
    the penultimate features (mahalanobis, knn, vim), or the disagreement of the data loop's ensemble
    (`ensemble`: mutual information of the deployable model's and the members' softmax; needs
    `active_learning.ensemble`, whose members then ship in the bundle); the report measures all of them that
    the project has. `auto` picks the one that
    accepts the fewest far images on validation-only selection sets (held-out photos, noise, the validation
    split shuffled and occluded), never on the sets the gate reports, and the report says why."""
    min_auroc: Fraction = 0.9
    """Smallest allowed AUROC separating test images from the worst far out-of-distribution set (photo
    crops, noise, each `ood_sources` folder); near sets are reported, not gated."""
    max_accepted_fraction: Fraction = 0.2
    """Largest allowed share of the worst far out-of-distribution set that serving accepts (answers instead
    of abstaining on) at its threshold, which accepts 95% of validation images: what serving does, where
    AUROC only measures ranking (a detector can reach AUROC 0.9 and still accept every far image)."""
    ood_sources: list[RepoPath] = []
    """Extra folders of images (searched recursively) that must be recognised as out-of-distribution."""


class Robustness(SpecModel):
    corruptions: list[Corruption] = ["fog", "low_light", "motion_blur", "pixelate", "occlusion", "gaussian_noise"]
    """Corruption families the model is tested against."""
    severities: Annotated[list[Annotated[int, Interval(1, 5)]], Field(min_length=1)] = [1, 2, 3]
    """Severities (1-5) each corruption is applied at."""
    max_accuracy_drop: Fraction = 0.15
    """Largest allowed test-accuracy loss of each corruption family (mean over the severities) against
    clean images; for detectors, the loss of test mAP50-95."""


class Calibration(SpecModel):
    max_ece: Fraction = 0.05
    """Largest allowed expected calibration error (15 bins, test split) after temperature scaling fitted on
    the validation split."""


class Explain(SpecModel):
    gradcam_samples: NonNegativeInt = 16
    """Test images explained with Grad-CAM overlays in the report (up to half of them mistakes) and scored
    with ROAD."""


class DependabilitySection(SpecModel):
    """Thresholds the deployable model must meet before the gate lets it reach serving."""

    min_accuracy: Fraction = 0.9
    """Smallest allowed test accuracy of the deployable model."""
    min_class_recall: Fraction | None = None
    """Smallest allowed test recall of every class (the share of its images the deployable model gets right),
    so a model that ignores one class cannot pass on overall accuracy alone; null checks no class."""
    min_map: Fraction | None = None
    """Detection: smallest allowed test mAP50-95 (COCO) of the deployable model (0.5 when a detection spec
    leaves it out). Multi-label: smallest allowed test mAP over tags (0.5 when a multilabel spec leaves it
    out)."""
    min_map50: Fraction | None = None
    """Detection: smallest allowed test mAP at IoU 0.5 of the deployable model (0.75 when a detection spec leaves
    it out)."""
    min_tag_ap: Fraction | None = None
    """Multi-label: smallest allowed test average precision of every tag (0.3 when a multilabel spec leaves it
    out), so a tagger that never finds one tag cannot pass on its mean (`min_map`) alone."""
    ood: Ood = Ood()
    """Out-of-distribution detection."""
    robustness: Robustness = Robustness()
    """Accuracy under corruptions."""
    calibration: Calibration = Calibration()
    """Confidence calibration."""
    explain: Explain = Explain()
    """Visual explanations."""


class Capture(SpecModel):
    """Opt-in: the model server keeps the requests its model was unsure of (abstained, or a low margin) so the
    data loop can learn from production. Captured images are user data: see the README's privacy notes before
    turning this on; without this section nothing is written."""

    destination: Annotated[str, Field(pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?|[^:\s]+)$")]
    """Where captures go: an S3 prefix (`s3://bucket/prefix`, credentials from the predictor's service account or
    the standard AWS variables) or a local folder of the server's machine (no `:` in it)."""
    abstained: bool = True
    """Capture requests the server abstained on (out-of-distribution)."""
    max_margin: Fraction = 0.1
    """Also capture when the model hesitates: a classifier's top-two probability gap at most this; a detector's
    detection scoring within this above the score threshold. 0 captures abstentions only."""
    max_image_bytes: Annotated[int, Interval(1, 50_000_000)] = 5_000_000
    """Encoded images larger than this are not captured (the record says so)."""
    max_per_minute: Annotated[int, Interval(1, 100_000)] = 60
    """At most this many captures per minute per server process; further ones are counted, not written."""
    max_stored: Annotated[int, Interval(1, 10_000_000)] = 10_000
    """At most this many captures kept; the oldest are deleted first."""
    retention_days: Annotated[int, Interval(1, 3650)] = 30
    """Captures older than this are deleted."""


class ServingSection(SpecModel):
    """How the promoted model is served by KServe."""

    capture: Capture | None = None
    """Opt-in capture of uncertain requests for the data loop; null captures nothing."""

    namespace: DnsLabel = "vision"
    """Kubernetes namespace of the InferenceService."""
    min_replicas: NonNegativeInt = 1
    """Fewest predictor replicas (0 allows scale to zero)."""
    max_replicas: PositiveInt = 4
    """Most predictor replicas under load."""
    canary_percent: Annotated[int, Interval(0, 100)] = 10
    """Share of traffic the new revision gets before it is rolled out fully; 0 disables canarying."""
    abstain_on_ood: bool = True
    """Answer 'abstained' instead of a class when the OOD detector fires."""
    max_image_pixels: Annotated[int, Interval(1)] = 40_000_000
    """Largest image a request may hold, in pixels (width x height), checked on the encoded header before
    decoding; larger images get a 4xx. 40 MP is above common camera sensors and decodes well within the
    predictor's memory limit."""
    max_image_side_px: Annotated[int, Interval(1)] = 16_384
    """Longest accepted image side in pixels (same check)."""
    storage_uri: Annotated[str, Field(pattern=r"^(s3|gs|pvc|https)://.+")] = "s3://models/autodl"
    """Where promoted models are stored (the DVC remote); models land under <uri>/<project>/<digest>."""
    predictor_image: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9./_:@-]*$")] = "autodl-predictor:0.1.0"
    """Container image of the model server (built from serving/Dockerfile and pushed by the team)."""
    service_account: DnsLabel | None = None
    """Service account whose bound credentials read `storage_uri` (none in git); default `<project>-predictor`."""
    gitops_repo: Annotated[str, Field(pattern=r"^(https://|ssh://|git@).+")] | None = None
    """Git repository Argo CD watches for `k8s/`; no Argo CD Application is written while it is unset."""
    gitops_revision: str = "main"
    """Branch Argo CD follows: a merge to it is the promotion."""
