"""The data loop's round, whatever the task (each task's select module runs `run_round` with its own LoopTask:
stages.loop.select for classification, stages.detection.loop.select). The unlabelled pool is admitted as
ingest admits images (checks, exact and near-duplicates of the labelled set and of each other dropped), scored
by the deployable model as the server scores requests, and the round's queue is chosen by
`active_learning.strategy`.

Written into `data/<project>/select/`: `labelstudio_tasks.json` (Label Studio import: each task's image, where
it came from, and the annotator's guesses as `predictions`), `labelstudio_config.xml` (the labelling
interface), the task's queue file for other tools (`queue_coco.json` for detection, `queue.csv` for
classification), `auto_labels.json` (what the model is sure of, only with `auto_label` set; never mixed with
human labels), `scores.csv` (every figure of every pool image) and `pool.csv` (what happened to each pool
file). `reports/<project>/select/queue.png` shows the queue with the model's guesses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.fsutil import atomic_directory, read_csv, read_json, write_csv, write_json, write_text_atomically
from core.progress import Progress
from core.spec.data import Embedding
from core.spec.loop import ActiveLearningSection
from runtime.artifact import Artifact
from stages.runtime import StageContext, StageFailure
from vision.data import labelstudio
from vision.data.duplicates import DuplicateRule
from vision.data.embedding import embed_images, embedding_model
from vision.data.imageio import PixelLimits
from vision.data.labelstudio import Guess, LabelKind
from vision.data.sources import RepoFiles, SourceStats, UnsupportedSource
from vision.data.vectors import load_embeddings, stored_embedder
from vision.loop.choose import Choice, Round
from vision.loop.pool import Admitted, admit, iter_pool, near_duplicates
from vision.loop.reports import queue_gallery
from vision.training.pretrained import WEIGHTS


@dataclass
class Pool:
    """The admitted pool images: canonical PNGs in the stage's folder, their metadata and embeddings."""

    admitted: Admitted
    pngs: list[Path]
    vectors: np.ndarray
    dropped: dict[int, str]
    labelled: np.ndarray
    """The labelled set's embeddings (the embed stage's): what the pool is deduplicated against and what
    diversity-aware strategies count as covered."""

    @property
    def candidates(self) -> list[int]:
        return [i for i in range(len(self.pngs)) if i not in self.dropped]


@dataclass
class Decision:
    """The round, in candidate positions, and the guesses offered for each candidate."""

    round: Round
    guesses: list[list[Guess]]
    auto: np.ndarray
    abstained: np.ndarray
    ood_scores: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def admit_pool(ctx: StageContext, loop: ActiveLearningSection, out: Path) -> Pool:
    limits = PixelLimits(max_pixels=ctx.spec("data.quality.max_image_pixels"))
    files, stats = RepoFiles(ctx.root.resolve(), limits), SourceStats()
    labelled = {row["sha256"] for row in read_csv(ctx.input("manifest"))}
    flow = ctx.spec("data.cleaning.static_frame_flow_px")
    try:
        items = (item for source in loop.pool for item in iter_pool(source, ctx.root, files, flow, stats))
        with Progress("select: pool", None, unit="image") as shown:
            admitted = admit(shown.iterate(items), tuple(ctx.spec("data.quality.min_size_px")), labelled)
    except UnsupportedSource as exc:
        raise StageFailure(str(exc)) from None
    admitted.rows.extend({"origin": s.origin, "source": s.source, "sha256": "", "status": "skipped",
                          "reason": s.reason} for s in stats.skipped)
    pngs = []
    for image in admitted.images:
        pngs.append(out / "images" / f"{image.sha256[:16]}.png")
        pngs[-1].parent.mkdir(parents=True, exist_ok=True)
        pngs[-1].write_bytes(image.png)
    embedding: Embedding = ctx.spec("data.embedding")
    embedder, size = stored_embedder(ctx.input("embeddings")) or (
        embedding.embedder, embedding.input_size_px or WEIGHTS[embedding.embedder].input_size_px)
    vectors = embed_images(pngs, embedding_model(embedder), size, progress=True)
    labelled_vectors, _ = load_embeddings(ctx.input("embeddings"))
    rule = DuplicateRule.from_dict(read_json(ctx.input("duplicate_rule")))
    dropped = near_duplicates(vectors, labelled_vectors, rule)
    return Pool(admitted, pngs, vectors, dropped, labelled_vectors)


@dataclass(frozen=True)
class QueuedImage:
    """One image of the round's queue as a labelling tool's import file names it."""

    path: str
    width: int
    height: int
    guesses: list[Guess]


def deployable_artifact(ctx: StageContext) -> Artifact:
    """The project's deployable model with its serving state, as the server would load it."""
    return Artifact.load([ctx.input("deployable"), ctx.input("serving_state")])


@dataclass(frozen=True)
class LoopTask:
    """What differs between tasks in a round: how the pool is scored and the queue chosen, the Label Studio
    interface, and the queue file other labelling tools import. Each task's select module supplies one."""

    label_kind: LabelKind
    decide: Callable[[StageContext, ActiveLearningSection, Any, Pool, Choice, np.ndarray], Decision]
    """(context, loop settings, the loaded model, admitted pool, strategy, labelled embeddings) -> the round."""
    write_queue_file: Callable[[Path, list[QueuedImage], list[str]], None]
    """(the round's folder, the queue, class names) -> the queue in the task's usual interchange format."""
    load: Callable[[StageContext], Any] = deployable_artifact
    """The model that scores the pool (it has a `version`): by default the deployable file."""


def empty_decision() -> Decision:
    """Nothing left to score (an empty pool, or everything in it already labelled): an empty round."""
    nothing = np.zeros(0, np.int64)
    return Decision(Round(nothing, np.zeros(0), {}), [], nothing, np.zeros(0, bool), np.zeros(0))


def needs_torch(loop: ActiveLearningSection) -> bool:
    return loop.strategy in ("bald", "ensemble") or loop.annotator == "ensemble"


def member_dirs(ctx: StageContext) -> list[Path]:
    """The trained model (member 0) and the ensemble stage's members, as saved model folders."""
    folder = ctx.input("ensemble")
    return [ctx.input("model"), *sorted(p for p in folder.iterdir() if p.name.startswith("member-"))]


def zero_shot_guesses(loop: ActiveLearningSection, ctx: StageContext, paths: list[Path]) -> list[list[Guess]]:
    from vision.loop.zero_shot import ZeroShotDetector

    assert loop.zero_shot is not None
    detector = ZeroShotDetector.load(ctx.root / loop.zero_shot.model_path, list(ctx.spec("classes")))
    return [detector.guesses(path, loop.zero_shot.score_threshold) for path in paths]


def run_round(ctx: StageContext, task: LoopTask) -> None:
    """One round of the loop for `task`: admit, score, choose, write the queue."""
    loop: ActiveLearningSection = ctx.spec("active_learning")
    classes = list(ctx.spec("classes"))
    with atomic_directory(ctx.output("selection")) as out:
        pool = admit_pool(ctx, loop, out)
        artifact = task.load(ctx)
        choice = Choice(loop.strategy, loop.batch_size, ctx.spec("seed"), loop.hybrid_pool)
        decision = (task.decide(ctx, loop, artifact, pool, choice, pool.labelled) if pool.candidates
                    else empty_decision())
        candidates = pool.candidates
        if loop.annotator == "zero_shot":
            queued_paths = [pool.pngs[candidates[i]] for i in decision.round.queue]
            for i, found in zip(decision.round.queue, zero_shot_guesses(loop, ctx, queued_paths), strict=True):
                decision.guesses[i] = found
        version = f"autodl:{ctx.project}:{artifact.version}" if loop.annotator == "model" else \
            f"autodl:{ctx.project}:{loop.annotator}"
        write_queue(out, ctx, loop, pool, decision, version, classes, task)
        gallery = [(pool.pngs[candidates[i]], decision.guesses[i], float(decision.round.uncertainty[i]))
                   for i in decision.round.queue]
        queue_gallery(gallery, ctx.output("queue_png"), f"{ctx.project}: {len(gallery)} images to label "
                      f"({loop.strategy}) with the {loop.annotator}'s guesses")
    summary = round_summary(pool, decision, loop)
    write_json(ctx.output("summary"), summary)
    print(f"select: {summary['pool_admitted']} pool images admitted, {summary['near_duplicates']} near-duplicates "
          f"dropped, {summary['queued']} queued ({loop.strategy}), {summary['auto_labelled']} auto-labelled; "
          f"import {ctx.output('tasks')} into Label Studio")


def write_queue(out: Path, ctx: StageContext, loop: ActiveLearningSection, pool: Pool, decision: Decision,
                version: str, classes: list[str], task: LoopTask) -> None:
    candidates = pool.candidates
    queued = decision.round.queue.tolist()
    published = ctx.output("selection").relative_to(ctx.root).as_posix()

    def entry(i: int, model_version: str) -> dict[str, Any]:
        index = candidates[i]
        image, meta = pool.admitted.images[index], pool.admitted.items[index].meta
        shown = meta.get("path") or f"{published}/images/{pool.pngs[index].name}"  # a video frame: its PNG here
        meta = {**{k: v for k, v in meta.items() if k != "capture"}, "sha256": image.sha256,
                "uncertainty": round(float(decision.round.uncertainty[i]), 6)}
        return labelstudio.task(loop.image_url_prefix + str(shown), meta,
                                [labelstudio.prediction(decision.guesses[i], image.width, image.height, model_version,
                                                       task.label_kind)])

    write_text_atomically(out / ctx.inside("tasks"), _json([entry(i, version) for i in queued]))
    write_text_atomically(out / ctx.inside("auto_labels"),
                          _json([entry(int(i), version + ":auto") for i in decision.auto]))
    write_text_atomically(out / "labelstudio_config.xml", labelstudio.label_config(classes, task.label_kind))
    task.write_queue_file(out, [QueuedImage(
        str(pool.admitted.items[candidates[i]].meta.get("path", pool.pngs[candidates[i]].name)),
        pool.admitted.images[candidates[i]].width, pool.admitted.images[candidates[i]].height, decision.guesses[i])
        for i in queued], classes)
    write_csv(out / ctx.inside("scores"), score_rows(pool, decision))
    status = {candidates[i]: "queued" for i in queued} | {candidates[int(i)]: "auto_labelled" for i in decision.auto}
    rows = [{"origin": item.origin, "source": item.source, "sha256": image.sha256,
             "status": status.get(index, "near_duplicate" if index in pool.dropped else "scored"),
             "reason": pool.dropped.get(index, "")}
            for index, (item, image) in enumerate(zip(pool.admitted.items, pool.admitted.images, strict=True))]
    write_csv(out / ctx.inside("pool"), rows + pool.admitted.rows, ("origin", "source", "sha256", "status", "reason"))


def score_rows(pool: Pool, decision: Decision) -> list[dict[str, Any]]:
    rank = {int(i): r + 1 for r, i in enumerate(decision.round.queue)}
    return [{"origin": pool.admitted.items[index].origin, "sha256": pool.admitted.images[index].sha256,
             "queue_rank": rank.get(i, ""), "abstained": bool(decision.abstained[i]),
             "ood_score": round(float(decision.ood_scores[i]), 6),
             **{name: round(float(values[i]), 6) for name, values in sorted(decision.round.figures.items())}}
            for i, index in enumerate(pool.candidates)]


def round_summary(pool: Pool, decision: Decision, loop: ActiveLearningSection) -> dict[str, Any]:
    uncertainty = decision.round.uncertainty
    queued = decision.round.queue
    return {"strategy": loop.strategy, "annotator": loop.annotator,
            "pool_admitted": len(pool.pngs), "pool_refused": len(pool.admitted.rows),
            "near_duplicates": len(pool.dropped), "scored": len(pool.candidates), "queued": len(queued),
            "auto_labelled": len(decision.auto), "abstained": int(decision.abstained.sum()),
            "mean_uncertainty_queued": round(float(uncertainty[queued].mean()), 6) if len(queued) else 0.0,
            "mean_uncertainty_pool": round(float(uncertainty.mean()), 6) if len(uncertainty) else 0.0}


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
