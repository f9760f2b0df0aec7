"""select (multi-label): one round of the data loop for a tagger: the pool scored with the deployable tagger,
each image's uncertainty from its tags' (vision.loop.tagging), the tags above their thresholds offered as one
multiple-choice pre-annotation, the queue also written as `queue.csv`. The round itself is stages.loop.round's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.fsutil import write_csv
from core.spec.loop import ActiveLearningSection
from runtime.artifact import Artifact
from stages.loop.round import Decision, LoopTask, Pool, QueuedImage, run_round
from stages.runtime import StageContext, run_stage
from vision.data.tag_sources import MULTIPLE_CHOICES
from vision.data.tags import TAG_SEPARATOR
from vision.loop import scoring
from vision.loop.choose import Choice
from vision.loop.tagging import sure_tags, tag, tag_guesses, tagging_round


def write_queue_csv(out: Path, queued: list[QueuedImage], classes: list[str]) -> None:
    """The queue as a table: each image's path, the guessed tags and their probabilities."""
    write_csv(out / "queue.csv", [{"path": image.path, "tags": TAG_SEPARATOR.join(g.label for g in image.guesses),
                                   "scores": TAG_SEPARATOR.join(f"{g.score:.6f}" for g in image.guesses)}
                                  for image in queued], ("path", "tags", "scores"))


def tagging_decision(ctx: StageContext, loop: ActiveLearningSection, artifact: Artifact, pool: Pool,
                     choice: Choice, covered: np.ndarray) -> Decision:
    tagged = tag(artifact, scoring.inputs(artifact, [pool.pngs[i] for i in pool.candidates]))
    decided = tagging_round(choice, tagged, artifact.classes, pool.vectors[pool.candidates], covered)
    auto = (sure_tags(tagged, decided.queue, loop.auto_label.min_confidence, loop.auto_label.max_images)
            if loop.auto_label else np.zeros(0, np.int64))
    return Decision(decided, tag_guesses(tagged, artifact.classes), auto, tagged.abstained, tagged.ood_scores)


def main(ctx: StageContext) -> None:
    run_round(ctx, LoopTask(MULTIPLE_CHOICES, tagging_decision, write_queue_csv))


if __name__ == "__main__":
    from core.contracts.multilabel.select import CONTRACT

    run_stage(CONTRACT, main)
