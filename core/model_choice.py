"""`model: auto`: the backbone, weights and input size chosen from the data and the target, with the reasons.

One function decides, and both the train stage (which trains what it says) and `autodl doctor` (which shows it
before anything trains) call it, so what the user is told is what runs. Pure and torch-free: it reads the image
sizes ingest recorded, the spec and the hardware profile, so it answers in microseconds and the same inputs always
give the same choice (the trained model never depends on which machine chose it).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.profiles import PROFILES
from core.sizes import median_shorter_side, native_input_size
from core.spec.training import ModelSection, offline_weights, weights_backbone

AUTO_BACKBONE = "tf_efficientnet_lite0"
"""What `backbone: auto` trains: of the backbones whose ImageNet weights ship here, the cheapest to fine-tune on a
CPU (0.38 GMACs at 224 px against 0.50 and 0.58 for Lite1 and Lite2), and the one int8 serves fastest."""
FALLBACK_BACKBONE = "resnet10t"
"""From scratch, when even the smallest pretrained input misses the latency budget (a 32 px ResNet-10t)."""
PRETRAINED_MIN_PX = 64
"""ImageNet weights learned objects dozens of pixels wide: below this their later levels see a 1-2 px map."""
SCRATCH_MIN_PX = 32
AUTO_MAX_PX = 320
"""Larger inputs train slowly on CPU; beyond this pin `model.input_size_px` (or tile, for detection)."""
SIZE_STEP_PX = 32
"""Backbones downsample by 32: sizes are multiples of it."""

GMACS_AT_224 = {
    "tf_efficientnet_lite0": 0.3839, "tf_efficientnet_lite1": 0.5012, "tf_efficientnet_lite2": 0.5752,
    "resnet10t": 1.0967,
}
"""Multiply-accumulates of one 224 x 224 image (torch's FlopCounterMode; a test recounts them), which grow with
the square of the side."""


@dataclass(frozen=True)
class ModelChoice:
    backbone: str
    pretrained: str | None
    input_size_px: int
    chosen: tuple[str, ...]
    """The keys that were `auto` (the rest are the spec's)."""
    reasons: tuple[str, ...]
    """One sentence per choice: what it rests on, and how to pin it."""

    def pinned(self) -> str:
        """The spec line that makes this choice explicit."""
        return (f"model: {{backbone: {self.backbone}, pretrained: {self.pretrained or 'null'}, "
                f"input_size_px: {self.input_size_px}}}")


def estimated_latency_ms(backbone: str, size_px: int, hardware: str) -> float | None:
    """One image's serving latency on one core of `hardware`, from the MACs and the profile's measured rate;
    None where either is unknown (the compress stage measures the real one)."""
    rate = PROFILES[hardware].serving_ms_per_gmac
    gmacs = GMACS_AT_224.get(backbone)
    if rate is None or gmacs is None:
        return None
    return gmacs * (size_px / 224) ** 2 * rate


def _within_latency(backbone: str, pretrained: str | None, size: int, hardware: str, budget_ms: float,
                    fallback: bool) -> tuple[str, str | None, int, str]:
    """The largest size (a step of 32 at a time, not below the floor) whose latency estimate fits `budget_ms`;
    with `fallback`, ResNet-10t from scratch at 32 px when nothing does. Returns the reason too."""
    estimate = estimated_latency_ms(backbone, size, hardware)
    if estimate is None:
        return backbone, pretrained, size, (f"no latency estimate for {backbone} on {hardware}: the compress stage "
                                            "measures whether compress.budget.max_latency_ms holds")
    wanted, floor = size, PRETRAINED_MIN_PX if pretrained else SCRATCH_MIN_PX
    while estimate > budget_ms and size - SIZE_STEP_PX >= floor:
        size -= SIZE_STEP_PX
        estimate = estimated_latency_ms(backbone, size, hardware) or 0.0
    if estimate > budget_ms and fallback:
        backbone, pretrained, size = FALLBACK_BACKBONE, None, SCRATCH_MIN_PX
        estimate = estimated_latency_ms(backbone, size, hardware) or 0.0
    fits = "fits" if estimate <= budget_ms else "still misses"
    lowered = f"lowered from {wanted} px so that " if size != wanted else ""
    return backbone, pretrained, size, (f"{lowered}the estimated latency on {hardware}, {estimate:.1f} ms, {fits} "
                                        f"compress.budget.max_latency_ms {budget_ms:g}")


def _weights(model: ModelSection, backbone: str) -> tuple[str | None, str | None]:
    """The weights and, when `auto` decided them, why."""
    if model.pretrained != "auto":
        return model.pretrained, None
    weights = offline_weights(backbone)
    if weights is None:
        return None, f"pretrained: no offline ImageNet weights ship for {backbone}, so it trains from scratch"
    return weights, f"pretrained: {weights}, the offline ImageNet weights made for {backbone}"


def _native(sizes: list[tuple[int, int]], pretrained: bool) -> tuple[int, str]:
    native = native_input_size(sizes)
    floor = PRETRAINED_MIN_PX if pretrained else SCRATCH_MIN_PX
    if native is None:
        return max(floor, 224 if pretrained else SCRATCH_MIN_PX), "no image sizes recorded"
    short = f"{median_shorter_side(sizes):g}"
    if native > AUTO_MAX_PX:
        return AUTO_MAX_PX, (f"the median shorter side is {short} px; capped at {AUTO_MAX_PX} px, beyond which "
                             "training on CPU gets slow (pin model.input_size_px for more)")
    if native < floor:
        return floor, (f"the median shorter side is {short} px, enlarged to {floor} px"
                       + (", the least at which ImageNet weights see objects of the size they learned" if pretrained
                          else ""))
    return native, f"the median shorter side is {short} px: at {native} px no detail is lost to resizing"


def choose_model(model: ModelSection, sizes: list[tuple[int, int]], hardware: str | None,
                 max_latency_ms: float | None) -> ModelChoice:
    """The spec's model with every `auto` key decided. `sizes`: each image's (width, height) as ingest recorded
    it; `hardware`: the target's profile name, None where the task sets its input size elsewhere (a detector's
    `detection.input_size_px`: the model's own input size is then left as it is)."""
    chosen, reasons = [], []
    backbone = model.backbone
    if backbone == "auto":
        backbone = weights_backbone(model.pretrained) if isinstance(model.pretrained, str) and \
            model.pretrained != "auto" else AUTO_BACKBONE
        chosen.append("backbone")
        reasons.append(f"backbone: {backbone}, the cheapest backbone to fine-tune on CPU whose ImageNet weights "
                       "ship here" if backbone == AUTO_BACKBONE else
                       f"backbone: {backbone}, the one model.pretrained's weights were made for")
    pretrained, why = _weights(model, backbone)
    if why:
        chosen.append("pretrained")
        reasons.append(why)
    size = model.input_size_px if model.input_size_px != "auto" else SCRATCH_MIN_PX
    if hardware is not None and model.input_size_px == "auto":
        chosen.append("input_size_px")
        size, why = _native(sizes, pretrained is not None)
        if max_latency_ms is not None:
            fallback = "backbone" in chosen and model.pretrained == "auto"
            backbone, pretrained, size, latency = _within_latency(backbone, pretrained, size, hardware,
                                                                  max_latency_ms, fallback)
            if backbone == FALLBACK_BACKBONE and fallback:
                reasons[:] = [f"backbone: {backbone} from scratch: {AUTO_BACKBONE} misses "
                              f"compress.budget.max_latency_ms even at {PRETRAINED_MIN_PX} px"]
                why = "the smallest input"
            why += f"; {latency}"
        reasons.append(f"input_size_px: {size}: {why}")
    return ModelChoice(backbone, pretrained, int(size), tuple(chosen), tuple(reasons))
