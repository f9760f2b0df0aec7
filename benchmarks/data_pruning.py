"""Data pruning on the default digits spec: test accuracy per method and budget, and dedup/prune speed.

Part 1 runs the real stages (ingest, embed, clean, split) once, then for every
budget x method x seed selects the training subset with the prune stage's code,
trains the spec's model with the spec's optimizer, schedule and epochs (no
augmentation and no search, so only the subset differs between runs) and
measures test accuracy. Targets: at budget 0.5 keep >= 99% of full-data accuracy; at 0.2 beat
random by >= 3 points on the mean.
Part 2 times near-duplicate search and cluster_balanced pruning on 100k random
512-d unit vectors: faiss against a plain numpy implementation, side by side.
The default method (`hybrid`) must beat random at 0.1 and at least match it at 0.2.
Usage: python benchmarks/data_pruning.py [--seeds 3] [--budgets 0.1 0.2 0.3 0.5] [--methods ...] [--skip-accuracy]
[--skip-speed]
(budget 1.0, the full-data reference, is always measured)
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _digits import prepare

BUDGETS = (0.1, 0.2, 0.3, 0.5, 1.0)
METHODS = ("random", "cluster_balanced", "kcenter", "semdedup", "hybrid")


def accuracy_table(work: Path, seeds: int, budgets: tuple[float, ...], methods: tuple[str, ...] = METHODS) -> None:
    from stages.train import train_model
    from vision.data.dataset import load_split
    from vision.data.selection import select_per_class
    from vision.training.model import ModelConfig, accuracy

    logging.getLogger("lightning").setLevel(logging.ERROR)
    prep = prepare(work)
    spec, records, vectors, split = prep.spec, prep.records, prep.vectors, prep.split
    config = ModelConfig(spec.model.backbone, list(spec.classes), spec.model.input_size_px, spec.model.drop_rate)
    train_all = load_split(work, work / "split.csv", "train", config.classes, config.input_size_px)
    val = load_split(work, work / "split.csv", "val", config.classes, config.input_size_px)
    test = load_split(work, work / "split.csv", "test", config.classes, config.input_size_px)
    train_rows = np.array([s == "train" for s in split])
    train_vectors, train_labels = vectors[train_rows], [r.label for r, s in zip(records, split, strict=True)
                                                        if s == "train"]
    results: dict[tuple[float, str], list[float]] = {}
    started = time.perf_counter()
    for budget in budgets:
        for method in methods if budget < 1.0 else ("all",):
            for seed in range(seeds):
                keep = np.ones(len(train_labels), bool) if method == "all" else select_per_class(
                    train_vectors, train_labels, budget, method, seed)
                subset = type(train_all)(train_all.images[keep], train_all.labels[keep],
                                         [p for p, k in zip(train_all.paths, keep, strict=True) if k])
                model = train_model(subset, val, config, spec.train, seed).model
                results.setdefault((budget, method), []).append(accuracy(model, test))
                print(f"  budget {budget:<4} {method:<17} seed {seed}: {results[(budget, method)][-1]:.4f} "
                      f"({int(keep.sum())} images, {time.perf_counter() - started:.0f} s so far)", flush=True)
    full = statistics.mean(results[(1.0, "all")])
    print(f"\nTest accuracy on digits ({len(test.labels)} test images), {spec.model.backbone} "
          f"{spec.train.epochs} epochs, mean ± std over {seeds} seeds; full data: {full:.4f}")
    print(f"{'budget':<7} {'method':<17} {'mean':>7} {'std':>7} {'vs random':>10} {'of full':>8}")
    for budget in budgets[:-1]:
        random_mean = statistics.mean(results[(budget, "random")])
        for method in methods:
            scores = results[(budget, method)]
            mean, std = statistics.mean(scores), statistics.pstdev(scores)
            print(f"{budget:<7} {method:<17} {mean:7.4f} {std:7.4f} {100 * (mean - random_mean):+9.2f}p "
                  f"{mean / full:8.2%}")
    if 0.5 in budgets:
        best_half = max(statistics.mean(results[(0.5, m)]) for m in methods)
        print(f"\nTarget budget 0.5 >= 99% of full: best {best_half / full:.2%} -> "
              f"{'met' if best_half / full >= 0.99 else 'MISSED'}")
    if 0.2 in budgets:
        best_margin = max(statistics.mean(results[(0.2, m)]) - statistics.mean(results[(0.2, "random")])
                          for m in methods if m != "random")
        print(f"Target budget 0.2 beats random by >= 3 points: best margin {100 * best_margin:+.2f} -> "
              f"{'met' if best_margin >= 0.03 else 'MISSED'}")
    default = "hybrid"
    for budget, wanted, word in ((0.1, 1e-9, "beats"), (0.2, 0.0, "matches")):
        if budget in budgets and default in methods:
            gap = statistics.mean(results[(budget, default)]) - statistics.mean(results[(budget, "random")])
            print(f"Target: the default ({default}) {word} random at {budget:g}: {100 * gap:+.2f} points -> "
                  f"{'met' if gap >= wanted else 'MISSED'}")


def numpy_pairs_above(vectors: np.ndarray, threshold: float, block: int = 4096) -> int:
    """Exact baseline: blockwise matrix products, counting pairs i < j at or above the threshold."""
    count = 0
    for start in range(0, len(vectors), block):
        similarity = vectors[start:start + block] @ vectors.T
        rows, cols = np.nonzero(similarity >= threshold)
        count += int(np.sum(cols > rows + start))
    return count


def numpy_kmeans(vectors: np.ndarray, clusters: int, iterations: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = vectors[rng.choice(len(vectors), clusters, replace=False)]
    for _ in range(iterations):
        assignment = np.argmax(vectors @ centres.T, axis=1)
        for c in range(clusters):
            members = vectors[assignment == c]
            if len(members):
                centres[c] = members.mean(axis=0)
    return assignment


def speed_table(n: int = 100_000, dim: int = 512) -> None:
    import faiss

    from vision.data.neighbours import pairs_above
    from vision.data.selection import _cluster_count

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[n // 2:n // 2 + 100] = vectors[:100] + 1e-4  # 100 planted near-duplicates
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    def timed(fn):
        started = time.perf_counter()
        value = fn()
        return value, time.perf_counter() - started

    faiss_pairs, faiss_dedup = timed(lambda: len(pairs_above(vectors, 0.97)))
    numpy_pairs, numpy_dedup = timed(lambda: numpy_pairs_above(vectors, 0.97))
    per_class = n // 10
    clusters = _cluster_count(per_class, per_class // 2)
    cls = vectors[:per_class]

    def faiss_kmeans() -> None:
        kmeans = faiss.Kmeans(dim, clusters, niter=20, seed=0, min_points_per_centroid=1)
        kmeans.train(cls)

    _, faiss_prune = timed(lambda: [faiss_kmeans() for _ in range(10)])
    _, numpy_prune = timed(lambda: [numpy_kmeans(cls, clusters, 20, 0) for _ in range(10)])
    print(f"\nDedup + prune on {n:,} random {dim}-d unit vectors (100 planted near-duplicates), 2 CPU threads")
    print(f"{'step':<48} {'faiss s':>8} {'numpy s':>8} {'speed-up':>9}")
    print(f"{'near-duplicate pairs at cosine >= 0.97':<48} {faiss_dedup:8.1f} {numpy_dedup:8.1f} "
          f"{numpy_dedup / faiss_dedup:8.1f}x   (found {faiss_pairs} vs {numpy_pairs} exact)")
    print(f"{f'k-means for pruning (10 classes x {clusters} clusters)':<48} {faiss_prune:8.1f} {numpy_prune:8.1f} "
          f"{numpy_prune / faiss_prune:8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS[:-1]),
                        help="budgets below 1.0 to measure (default: 0.1 0.2 0.3 0.5)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help="methods to compare (random is always included)")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if not args.skip_accuracy:
        with tempfile.TemporaryDirectory(prefix="autodl-prune-bench-") as work:
            budgets = tuple(sorted({*args.budgets, 1.0}))
            methods = tuple(dict.fromkeys(["random", *args.methods]))
            accuracy_table(Path(work), args.seeds, budgets, methods)
    if not args.skip_speed:
        speed_table()


if __name__ == "__main__":
    main()
