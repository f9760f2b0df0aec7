"""The `detection` section: the detector's input, its feature levels and how raw outputs become boxes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.spec._base import Fraction, Interval, PositiveFraction, SpecModel

Side = Annotated[int, Interval(64, 1024)]


class DetectionSection(SpecModel):
    """Detection only (filled with its defaults there): the single-stage detector and its decoding."""

    input_size_px: Side | Annotated[list[Side], Field(min_length=2, max_length=2)] = 320
    """The network's input: one side for a square, or [width, height]. Images are letterboxed into it (scaled
    to fit, aspect kept, padded); boxes come back in the original image's pixels. Multiples of the largest
    stride."""
    strides: Annotated[list[Literal[8, 16, 32, 64]], Field(min_length=1, max_length=4)] = [8, 16, 32]
    """Feature levels the head predicts from, by their down-sampling factor (FPN levels P3, P4, P5, P6)."""
    fpn_channels: Literal[32, 64, 96, 128, 192, 256] = 64
    """Channels of the feature pyramid and the head (multiples of 32: the head's GroupNorm uses 32 groups)."""
    head_convs: Annotated[int, Interval(1, 4)] = 2
    """Convolutions in each head tower (classification and box regression) before its output layer."""
    center_sampling_radius: Annotated[float, Interval(0.5, 4.0)] = 1.5
    """Locations within this many strides of a box's centre learn that box (FCOS centre sampling)."""
    score_threshold: Fraction = 0.001
    """Detections scoring below this are dropped before NMS. mAP ranks everything above it, so it stays low (as
    COCO-style evaluations do): a higher value cuts the precision-recall curve short and understates mAP."""
    confidence_threshold: Fraction = 0.5
    """The operating point: a detection scoring at least this counts as found (the confusion matrix, per-class
    precision and recall, the gallery of mistakes)."""
    nms_iou: PositiveFraction = 0.6
    """Boxes of one class overlapping a higher-scoring one at this IoU or more are suppressed."""
    max_detections: Annotated[int, Interval(1, 1000)] = 100
    """Most detections kept per image after NMS."""
    min_visibility: Fraction = 0.3
    """A box cropped by augmentation to less than this share of its area is dropped from that training view."""

    def size_wh(self) -> tuple[int, int]:
        """(width, height) of the network input."""
        size = self.input_size_px
        return (size, size) if isinstance(size, int) else (size[0], size[1])
