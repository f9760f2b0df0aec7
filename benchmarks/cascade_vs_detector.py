"""Detect, then classify, against the single-stage detector of the fine classes, measured side by side in one run
on the embedded demo's test images (what `make demo` trained, gated and released).

(a) the cascade's release: the one-class detector `digit-boxes`, each box cropped and named by `digit-kinds`
    (runtime.cascade, the function the model server answers with);
(b) the single-stage baseline `digits-on-photos`, the ten-class detector trained on the same images and splits.
Accuracy: COCO mAP50-95 and mAP50 over the ten classes (both models with OOD abstention off, as the cascade's
evaluation measures them). Latency: each test image alone through the released ONNX files (decode, fit, detect,
and for (a) crop and classify), one thread, as one served request would be; rounds alternate (a) and (b) so load
drifts hit both alike; per image the median over rounds of each pass's mean, per box the pass's total time over the
boxes answered. Both models use the served confidence threshold, so both answer with the boxes a client would get.
Usage: python benchmarks/cascade_vs_detector.py [--rounds 5] [--cascade digits-cascade]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import _digits  # noqa: F401  (puts the repository on sys.path)

REPO = Path(__file__).resolve().parents[1]


def _timed(answer: Callable[[bytes], int], decoded: list[bytes]) -> tuple[float, int]:
    """Seconds to answer every image alone, and the boxes answered."""
    boxes, start = 0, time.perf_counter()
    for data in decoded:
        boxes += answer(data)
    return time.perf_counter() - start, boxes


def _latency(timings: list[tuple[float, int]], images: int) -> tuple[float, float, int]:
    """(ms per image, ms per box answered, boxes answered): medians over the rounds."""
    per_image = statistics.median(seconds / images for seconds, _ in timings) * 1000
    per_box = statistics.median(seconds / max(found, 1) for seconds, found in timings) * 1000
    return per_image, per_box, timings[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cascade", default="digits-cascade", help="the cascade project (its spec names the rest)")
    args = parser.parse_args()

    from compiler.load import load_spec
    from runtime.artifact import Artifact
    from runtime.cascade import CascadeArtifact, cascade
    from vision.cascade.evaluation import figures, fine_detections, held_out_images, renamed, run_cascade, run_detector

    spec = load_spec(REPO / "specs" / f"{args.cascade}.yaml", REPO).spec
    section = spec.cascade
    if section is None or section.baseline is None:
        raise SystemExit(f"{args.cascade} is not a cascade with a baseline")
    release = REPO / "models" / args.cascade / "release"
    baseline_release = REPO / "models" / section.baseline / "release"
    for folder in (release, baseline_release):
        if not folder.is_dir():
            raise SystemExit(f"{folder.relative_to(REPO)} is missing: run `make demo` (or `dvc repro`) first")
    classes = list(spec.classes)
    pair = CascadeArtifact.load([release], threads=1, abstain_on_ood=False)
    single = Artifact.load([baseline_release], threads=1, abstain_on_ood=False)
    ingest = REPO / "data" / section.detector / "ingest"
    images = held_out_images(ingest, REPO / "data" / section.detector / "split" / "split.csv", classes,
                             pair.detector.classes)
    cascade_map = figures(fine_detections(run_cascade(pair.detector, pair.classifier, ingest, images, pair.padding),
                                          classes), images, classes)
    single_map = figures(renamed(run_detector(single, ingest, images), single.classes, classes), images, classes)

    def cascade_answer(data: bytes) -> int:
        return sum(len(a.boxes) for a in cascade(pair.detector, pair.classifier, [pair.decode(data)], pair.padding))

    def single_answer(data: bytes) -> int:
        image = single.decode(data)
        return sum(len(d) for d in single.detect(single.normalise(single.fit(image)[None]), [image.size]).detections)

    decoded = [(ingest / image.path).read_bytes() for image in images]
    _timed(cascade_answer, decoded), _timed(single_answer, decoded)  # warm-up: sessions, caches
    timings: dict[str, list[tuple[float, int]]] = {"cascade": [], "single": []}
    for _ in range(args.rounds):
        timings["cascade"].append(_timed(cascade_answer, decoded))
        timings["single"].append(_timed(single_answer, decoded))

    rows = [(f"cascade ({section.detector} -> {section.classifier})", cascade_map, timings["cascade"]),
            (f"single-stage ({section.baseline})", single_map, timings["single"])]
    print(f"{len(images)} test images of {section.detector} with {sum(len(i.boxes) for i in images)} boxes; "
          f"{args.rounds} rounds, one image per call, one thread")
    print(f"{'model':<46}{'mAP50-95':>10}{'mAP50':>9}{'ms/image':>10}{'ms/box':>9}{'boxes':>7}")
    for name, found, timed in rows:
        per_image, per_box, boxes = _latency(timed, len(images))
        print(f"{name:<46}{found['map']:>10.4f}{found['map50']:>9.4f}{per_image:>10.2f}{per_box:>9.2f}{boxes:>7}")
    print(json.dumps({"cascade": {"map": cascade_map["map"], "map50": cascade_map["map50"]},
                      "single": {"map": single_map["map"], "map50": single_map["map50"]}}))


if __name__ == "__main__":
    main()
