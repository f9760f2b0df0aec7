"""select (detection): one round of the data loop for a detector: the pool scored with the deployable detector
(and, for `ensemble`, the ensemble's detectors), boxes above the served confidence as guesses, the queue also
written as COCO for CVAT. The round itself is stages.loop.round's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.spec.loop import ActiveLearningSection
from runtime.artifact import Artifact
from stages.loop.round import Decision, LoopTask, Pool, QueuedImage, member_dirs, run_round
from stages.runtime import StageContext, run_stage
from vision.data.labelstudio import RECTANGLES, Guess
from vision.loop import scoring
from vision.loop.choose import Choice, detection_round, sure_detections


def write_queue_coco(out: Path, queued: list[QueuedImage], classes: list[str]) -> None:
    """The queue as COCO (what CVAT imports): each image with the guessed boxes."""
    from vision.detection.formats.coco import CocoImage, write

    write(out / "queue_coco.json", [CocoImage(image.path, image.width, image.height,
                                              tuple((g.label, *g.box) for g in image.guesses if g.box is not None))
                                    for image in queued], classes)


def detection_decision(ctx: StageContext, loop: ActiveLearningSection, artifact: Artifact, pool: Pool,
                       choice: Choice, covered: np.ndarray) -> Decision:
    assert artifact.detection is not None
    fed = scoring.inputs(artifact, [pool.pngs[i] for i in pool.candidates])
    with_members = loop.ensemble is not None and (loop.strategy == "ensemble" or loop.annotator == "ensemble")
    if with_members:  # the members score the same inputs again: decode them once
        fed = list(fed)
    detected = scoring.detect(artifact, fed)
    low = tuple(loop.low_confidence)
    members = None
    if with_members:
        from vision.detection.members import member_detections
        from vision.detection.store import load_detector

        members = member_detections([load_detector(d)[0] for d in member_dirs(ctx)], list(fed),
                                            artifact.detection.decoding, artifact.temperature,
                                            artifact.detection.confidence_threshold)
    decided = detection_round(choice, [d.scores for d in detected.detections], pool.vectors[pool.candidates],
                              covered, (low[0], low[1]), members)
    shown = artifact.detection.confidence_threshold
    guesses = [[Guess(artifact.classes[int(label)], float(score), tuple(float(v) for v in box))
                for box, score, label in zip(d.boxes, d.scores, d.labels, strict=True) if score >= shown]
               for d in detected.detections]
    if members is not None and loop.annotator == "ensemble":
        guesses = [scoring.agreed(g, m, artifact.classes) for g, m in zip(guesses, members, strict=True)]
    auto = (sure_detections([d.scores for d in detected.detections], detected.abstained, decided.queue,
                            loop.auto_label.min_confidence, (low[0], low[1]), loop.auto_label.max_images)
            if loop.auto_label else np.zeros(0, np.int64))
    if loop.auto_label:
        sure = set(auto.tolist())
        guesses = [[g for g in image if g.score >= loop.auto_label.min_confidence] if i in sure else image
                   for i, image in enumerate(guesses)]
    return Decision(decided, guesses, auto, detected.abstained, detected.ood_scores)


def main(ctx: StageContext) -> None:
    run_round(ctx, LoopTask(RECTANGLES, detection_decision, write_queue_coco))


if __name__ == "__main__":
    from core.contracts.detection.select import CONTRACT

    run_stage(CONTRACT, main)
