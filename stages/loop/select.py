"""select (classification): one round of the data loop for a classifier: the pool scored with the deployable
model (and, for `bald`, MC dropout; for `ensemble`, the ensemble's members), one guess per image, the queue also
written as `queue.csv`. The round itself is stages.loop.round's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.fsutil import write_csv
from core.spec.loop import ActiveLearningSection
from runtime.artifact import Artifact
from stages.loop.round import Decision, LoopTask, Pool, QueuedImage, member_dirs, needs_torch, run_round
from stages.runtime import StageContext, run_stage
from vision.data.labelstudio import SINGLE_CHOICE, Guess
from vision.loop import scoring
from vision.loop.choose import Choice, classification_round, sure_classifications


def write_queue_csv(out: Path, queued: list[QueuedImage], classes: list[str]) -> None:
    """The queue as a table: each image's path, the guessed class and its score."""
    write_csv(out / "queue.csv", [{"path": image.path, "guess": image.guesses[0].label,
                                   "score": round(image.guesses[0].score, 6)} for image in queued],
              ("path", "guess", "score"))


def classification_decision(ctx: StageContext, loop: ActiveLearningSection, artifact: Artifact, pool: Pool,
                            choice: Choice, covered: np.ndarray) -> Decision:
    fed = scoring.inputs(artifact, [pool.pngs[i] for i in pool.candidates])
    batches = []
    if needs_torch(loop):  # torch scores the same inputs again: decode them once
        fed = list(fed)
        batches = [batch.tensor for batch in fed]
    scored = scoring.classify(artifact, fed)
    samples = members = None
    if loop.strategy == "bald":
        from vision.training.model import load_model

        model, _ = load_model(ctx.input("model"))
        samples = scoring.mc_dropout_samples(model, batches, loop.mc_passes, loop.mc_dropout, artifact.temperature,
                                             ctx.spec("seed"))
    if loop.ensemble is not None and (loop.strategy == "ensemble" or loop.annotator == "ensemble"):
        from vision.training.model import load_model

        members = scoring.member_probabilities([load_model(d)[0] for d in member_dirs(ctx)], batches,
                                               artifact.temperature)
    decided = classification_round(choice, scored.probabilities, scored.features,
                                   pool.vectors[pool.candidates], covered, samples, members)
    answer = members.mean(axis=0) if members is not None and loop.annotator == "ensemble" else scored.probabilities
    guesses = [[Guess(artifact.classes[int(p.argmax())], float(p.max()))] for p in answer]
    auto = (sure_classifications(answer, scored.abstained, decided.queue, loop.auto_label.min_confidence,
                                 loop.auto_label.max_images) if loop.auto_label else np.zeros(0, np.int64))
    return Decision(decided, guesses, auto, scored.abstained, scored.ood_scores)


def main(ctx: StageContext) -> None:
    run_round(ctx, LoopTask(SINGLE_CHOICE, classification_decision, write_queue_csv))


if __name__ == "__main__":
    from core.contracts.loop.select import CONTRACT

    run_stage(CONTRACT, main)
