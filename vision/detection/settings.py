"""The spec's `detection` section as the runtime's settings: how outputs become boxes (runtime.detections.Decoding,
with its tiling) and how training samples tiles. One reading of the section for training, compression and the
benchmarks."""

from __future__ import annotations

from core.spec.detection import DetectionSection, TilingSection
from runtime.detections import Decoding, Tiling
from vision.detection.tiles import TileSampling


def spec_decoding(detection: DetectionSection) -> Decoding:
    tile_wh = detection.tile_wh()
    tiling = None if detection.tiling is None or tile_wh is None else Tiling(
        tile_wh, detection.tiling.overlap, detection.tiling.whole_image, detection.tiling.merge_threshold)
    return Decoding(detection.size_wh(), tuple(detection.strides), detection.score_threshold, detection.nms_iou,
                    detection.max_detections, tiling=tiling)


def spec_sampling(tiling: TilingSection | None) -> TileSampling:
    if tiling is None:
        return TileSampling()
    return TileSampling(tiling.min_visibility, tiling.negatives_per_positive)
