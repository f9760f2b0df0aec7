"""The `detection` section: the detector's input, its feature levels and how raw outputs become boxes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.spec._base import Fraction, Interval, PositiveFraction, SpecModel

Side = Annotated[int, Interval(64, 1024)]
TileSide = Annotated[int, Interval(32, 8192)]


class TilingSection(SpecModel):
    """Small objects in large images: train on tiles cut from each image, detect tile by tile and merge."""

    tile_px: TileSide | Annotated[list[TileSide], Field(min_length=2, max_length=2)] | None = None
    """Each tile's side (or [width, height]) in image pixels; null: the network's input size, so a tile keeps its
    pixels (an object of 20 px stays 20 px). A larger tile is letterboxed into the input (shrunk)."""
    overlap: Annotated[float, Interval(0.0, 0.75)] = 0.2
    """Share of a tile's side shared with its neighbour: objects smaller than the overlap are whole in a tile."""
    min_visibility: PositiveFraction = 0.5
    """A box cut by its tile's edge is kept in that tile's training view when at least this share of its area is
    inside (albumentations' `min_visibility`); below it the cut part is dropped."""
    negatives_per_positive: Annotated[float, Interval(0.0, 20.0)] = 0.5
    """Empty tiles (no box) kept for training per tile that holds a box, drawn with the seed: empty ground
    teaches what is not an object, but all of it would drown the objects."""
    whole_image: bool = False
    """Also detect on the whole image letterboxed into the input, and train on it: for scenes that hold objects
    larger than a tile beside the small ones (off: every object is smaller than the overlap)."""
    merge_threshold: PositiveFraction = 0.5
    """A detection cut by its tile's edge is dropped when this share of it lies inside a kept detection of its
    class (the object seen whole in the neighbouring tile); duplicates across tiles go by `nms_iou`."""


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
    tiling: TilingSection | None = None
    """Sliced training and inference for images much larger than the input (aerial, dash-cam); null: every image
    is letterboxed whole into the input. `autodl doctor` recommends it when the objects would shrink too far."""

    def size_wh(self) -> tuple[int, int]:
        """(width, height) of the network input."""
        return _wh(self.input_size_px)

    def tile_wh(self) -> tuple[int, int] | None:
        """(width, height) of a tile in image pixels, None when the detector is not tiled."""
        if self.tiling is None:
            return None
        return self.size_wh() if self.tiling.tile_px is None else _wh(self.tiling.tile_px)


def _wh(size: int | list[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[1])
