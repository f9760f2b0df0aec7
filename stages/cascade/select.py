"""select (cascade): one round of the data loop for a detect-then-classify pair. The pool is scored by the
released detector and classifier joined as the server joins them (runtime.cascade): an image is queued for a box
the detector hesitates on, or for a box it is sure of whose fine class the classifier hesitates on
(vision.loop.choose.cascade_round). Each queued image goes to Label Studio with the pair's answer as
pre-annotations: every box the pair answers with, labelled with its fine class, the coarse class and both scores
beside it. The labels belong to the fine classes: exported from Label Studio they return, as a `labelstudio`
source, to the project whose fine-class boxes both models learn from. The round itself is stages.loop.round's."""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.spec.loop import ActiveLearningSection
from runtime.artifact import Artifact, DetectionPrediction
from runtime.cascade import SETTINGS_FILE, CascadeAnswer, CascadeArtifact, named
from runtime.detections import Detections
from stages.detection.loop.select import write_queue_coco
from stages.loop.round import Decision, LoopTask, Pool, run_round
from stages.runtime import StageContext, run_stage
from vision.data.labelstudio import RECTANGLES, Guess
from vision.loop import scoring
from vision.loop.choose import Choice, cascade_round


def released_pair(ctx: StageContext) -> CascadeArtifact:
    """The pair as its members' releases hold them (whatever the cascade's own gate said: a young cascade needs
    labels most). The classifier keeps its guess on a crop it would abstain on: a person corrects a guess."""
    detector = Artifact.load([ctx.input("detector")])
    classifier = Artifact.load([ctx.input("classifier")], abstain_on_ood=False)
    return CascadeArtifact.joined(ctx.input("settings").joinpath(SETTINGS_FILE).read_bytes(), detector, classifier)


def answered(pair: CascadeArtifact, found: Detections, path: str, abstained: bool) -> CascadeAnswer:
    """The pair's answer on one pool image from the detector's boxes at or above its served confidence."""
    assert pair.detector.detection is not None
    served = found.scores >= pair.detector.detection.confidence_threshold
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    kept = Detections(found.boxes[served], found.scores[served], found.labels[served])
    return named(pair.detector, pair.classifier, DetectionPrediction([kept], np.zeros(1), np.array([abstained])),
                 [image], pair.padding)[0]


def guesses(answer: CascadeAnswer) -> list[Guess]:
    """Each answered box as a rectangle of its fine class, scored by the pair's combined score."""
    return [Guess(str(box.fine), box.score, box.box,
                  f"{box.coarse} {box.coarse_score:.2f} (detector), {box.fine} {box.fine_score:.2f} (classifier)")
            for box in answer.boxes if box.fine is not None]


def cascade_decision(ctx: StageContext, loop: ActiveLearningSection, pair: CascadeArtifact, pool: Pool,
                     choice: Choice, covered: np.ndarray) -> Decision:
    paths = [pool.pngs[i] for i in pool.candidates]
    detected = scoring.detect(pair.detector, scoring.inputs(pair.detector, paths))
    answers = [answered(pair, found, str(path), bool(abstained))
               for found, path, abstained in zip(detected.detections, paths, detected.abstained, strict=True)]
    low = tuple(loop.low_confidence)
    decided = cascade_round(choice, [d.scores for d in detected.detections],
                            [np.array([box.fine_score for box in a.boxes]) for a in answers], len(pair.classes),
                            pool.vectors[pool.candidates], covered, (low[0], low[1]))
    return Decision(decided, [guesses(a) for a in answers], np.zeros(0, np.int64), detected.abstained,
                    detected.ood_scores)


def main(ctx: StageContext) -> None:
    run_round(ctx, LoopTask(RECTANGLES, cascade_decision, write_queue_coco, released_pair))


if __name__ == "__main__":
    from core.contracts.cascade.select import CONTRACT

    run_stage(CONTRACT, main)
