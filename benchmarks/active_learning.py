"""Active learning on the real digits data: every selection strategy against random, side by side.

Part 1 simulates the loop with the true labels as the oracle: start from 2% of the training pool labelled
(chosen at random), add 2% per round up to 30%, retrain from scratch each round, measure test accuracy. Every
strategy chooses with the select stage's own core (vision.loop.choose) from the model's calibrated-free softmax,
its penultimate features (unit length, the coreset and hybrid geometry) and, for `bald`, 16 MC-dropout passes,
for `ensemble`, three members trained with other seeds. Headline: labels needed to reach 99% of the accuracy of
the same model trained on the whole pool, per strategy (goal: the best needs at most half of what random needs).

Part 2 is an uncertainty-quality check where today's OOD sets saturate: train on digits 0-5, score the test
images of 0-5 (in distribution) against those of 6-9 (held-out classes, OpenOOD's near-OOD shape), AUROC and
FPR at 95% TPR for every detector the project has, plus softmax entropy, MC-dropout mutual information and the
ensemble's disagreement.

The model is a small CNN on the native 8 x 8 scans (two convolutions, a 128-d feature layer, dropout), so the
~1,500 trainings of the three seeds take minutes, not hours; the strategies do not depend on it.
Part 3 (`--detection`) runs rounds on the demo detection project: its generated data, its detector from the
offline ImageNet weights, 10% of the training split labelled at random, +10% a round up to 50%, random against
entropy and hybrid, test mAP50-95 per labelled count (fewer epochs per round than the spec: a CPU budget).
Usage: python benchmarks/active_learning.py [--seeds 3] [--skip-rounds] [--skip-ood] [--end 0.30]
       [--detection [--detection-seeds 1] [--detection-epochs 6] [--detection-shares 0.1 0.2 ...]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vision.dependability.ood import FeatureDetector, logit_scores, ood_metrics
from vision.loop import scoring
from vision.loop.choose import Choice, classification_round
from vision.loop.uncertainty import entropy, mutual_information

STRATEGIES = ("random", "least_confidence", "margin", "entropy", "bald", "ensemble", "coreset", "badge", "hybrid")
STEP = 0.02
MEMBERS = 3
MC_PASSES = 16
DROPOUT = 0.3


class SmallNet(nn.Module):
    """Two convolutions and a 128-d feature layer; the timm-style methods the loop's scoring code calls."""

    def __init__(self, classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU())
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Linear(128, classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(self.dropout(features))

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def train(x: np.ndarray, y: np.ndarray, classes: int, seed: int, epochs: int = 60) -> SmallNet:
    torch.manual_seed(seed)
    model = SmallNet(classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    steps = max(epochs, int(np.ceil(epochs * len(x) / 64)))
    model.train()
    for _ in range(steps):  # a fixed number of 64-image steps: small sets are not under-trained
        batch = torch.randint(0, len(x), (min(64, len(x)),), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xs[batch]), ys[batch]).backward()
        optimizer.step()
    return model.eval()


@torch.inference_mode()
def outputs(model: SmallNet, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits, penultimate features) for a float N x 1 x 8 x 8 array."""
    features = model.forward_features(torch.from_numpy(x))
    return model.head(features).double().numpy(), features.double().numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Data:
    pool_x: np.ndarray
    pool_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def digits(test_share: float = 0.3) -> Data:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    px, tx, py, ty = train_test_split(x, bunch.target, test_size=test_share, random_state=0, stratify=bunch.target)
    return Data(px, py.astype(np.int64), tx, ty.astype(np.int64))


def accuracy(model: SmallNet, x: np.ndarray, y: np.ndarray) -> float:
    return float((outputs(model, x)[0].argmax(axis=1) == y).mean())


def one_round(strategy: str, data: Data, labelled: np.ndarray, model: SmallNet, k: int, seed: int,
              round_seed: int) -> np.ndarray:
    """The pool indices the strategy sends to the oracle this round."""
    unlabelled = np.setdiff1d(np.arange(len(data.pool_y)), labelled)
    logits, features = outputs(model, data.pool_x[unlabelled])
    probabilities = softmax(logits)
    covered = unit(outputs(model, data.pool_x[labelled])[1])
    batches = [data.pool_x[unlabelled]]
    samples = members = None
    if strategy == "bald":
        samples = scoring.mc_dropout_samples(model, batches, MC_PASSES, DROPOUT, 1.0, round_seed)
    if strategy == "ensemble":
        others = [train(data.pool_x[labelled], data.pool_y[labelled], 10, round_seed + m) for m in range(1, MEMBERS)]
        members = scoring.member_probabilities([model, *others], batches, 1.0)
    choice = Choice(strategy, k, round_seed)
    decided = classification_round(choice, probabilities, features, unit(features), covered, samples, members)
    return unlabelled[decided.queue]


def rounds(data: Data, seeds: int, end: float) -> tuple[dict[str, dict[float, list[float]]], list[float]]:
    n = len(data.pool_y)
    k = round(STEP * n)
    fractions = [round(STEP * (r + 1), 2) for r in range(round(end / STEP))]
    table: dict[str, dict[float, list[float]]] = {s: {} for s in STRATEGIES}
    started = time.perf_counter()
    for seed in range(seeds):
        start = np.random.default_rng(seed).choice(n, k, replace=False)
        for strategy in STRATEGIES:
            labelled = start.copy()
            for r, fraction in enumerate(fractions):
                model = train(data.pool_x[labelled], data.pool_y[labelled], 10, 1000 * seed + r)
                table[strategy].setdefault(fraction, []).append(accuracy(model, data.test_x, data.test_y))
                if r + 1 < len(fractions):
                    labelled = np.concatenate([labelled, one_round(strategy, data, labelled, model, k, seed,
                                                                   1000 * seed + r)])
            print(f"  seed {seed} {strategy:<17} at {fractions[-1]:.0%}: {table[strategy][fractions[-1]][-1]:.4f} "
                  f"({time.perf_counter() - started:.0f} s so far)", flush=True)
    full = [accuracy(train(data.pool_x, data.pool_y, 10, 1000 * seed + 999), data.test_x, data.test_y)
            for seed in range(seeds)]
    return table, full


def print_rounds(table: dict[str, dict[float, list[float]]], full: list[float], n: int, seeds: int) -> None:
    fractions = sorted(next(iter(table.values())))
    print(f"\n1. Test accuracy by labelled share of the {n}-image pool (mean of {seeds} seeds; 2% labelled at random "
          f"to start, +2% a round)")
    print(f"{'labelled':>9} {'images':>7}  " + " ".join(f"{s[:12]:>12}" for s in STRATEGIES))
    for fraction in fractions:
        print(f"{fraction:>9.0%} {round(fraction * n):>7}  " + " ".join(
            f"{statistics.mean(table[s][fraction]):>12.4f}" for s in STRATEGIES))
    target = 0.99 * statistics.mean(full)
    print(f"\nfull pool ({n} images): {statistics.mean(full):.4f}; target 99% of it = {target:.4f}")
    needed = {}
    for strategy in STRATEGIES:
        reached = [f for f in fractions if statistics.mean(table[strategy][f]) >= target]
        needed[strategy] = reached[0] if reached else None
    print(f"{'strategy':<18} {'labels to reach the target':>28}")
    for strategy in STRATEGIES:
        share = needed[strategy]
        shown = f"{share:.0%} ({round(share * n)} images)" if share is not None else f"not by {fractions[-1]:.0%}"
        print(f"{strategy:<18} {shown:>28}")
    random_share = needed["random"]
    best = min((s for s in STRATEGIES if s != "random" and needed[s] is not None), key=lambda s: needed[s],
               default=None)
    if best is None:
        print("goal (best strategy needs <= half of random's labels): MISSED (no strategy reached the target)")
    elif random_share is None:
        known = needed[best] <= fractions[-1] / 2 + 1e-9  # random needs more than the last share measured
        verdict = "met" if known else f"not decided by {fractions[-1]:.0%} (run with a larger --end)"
        print(f"goal (best strategy needs <= half of random's labels): {verdict} ({best} {needed[best]:.0%}; "
              f"random not by {fractions[-1]:.0%})")
    else:
        met = needed[best] <= random_share / 2 + 1e-9
        print(f"goal (best strategy needs <= half of random's labels): {'met' if met else 'MISSED'} "
              f"({best} {needed[best]:.0%} vs random {random_share:.0%})")


def held_out_classes(data: Data, seeds: int) -> None:
    known = 6
    train_rows = data.pool_y < known
    id_rows, ood_rows = data.test_y < known, data.test_y >= known
    results: dict[str, list[tuple[float, float]]] = {}
    for seed in range(seeds):
        x, y = data.pool_x[train_rows], data.pool_y[train_rows]
        model = train(x, y, known, 100 + seed)
        _train_logits, train_features = outputs(model, x)
        logits, features = outputs(model, data.test_x)
        scores: dict[str, np.ndarray] = {name: logit_scores(name, logits) for name in ("msp", "energy", "max_logit")}
        for name in ("mahalanobis", "knn", "vim"):
            detector = FeatureDetector(name, weight=model.head.weight.detach().numpy(),
                                       bias=model.head.bias.detach().numpy())
            scores[name] = detector.fit(train_features.astype(np.float32), y).score(features.astype(np.float32))
        scores["softmax entropy"] = entropy(softmax(logits))
        scores["mc dropout (bald)"] = mutual_information(
            scoring.mc_dropout_samples(model, [data.test_x], MC_PASSES, DROPOUT, 1.0, seed))
        members = [model, *(train(x, y, known, 200 + 10 * seed + m) for m in range(1, MEMBERS))]
        scores["ensemble disagreement"] = mutual_information(
            scoring.member_probabilities(members, [data.test_x], 1.0))
        for name, values in scores.items():
            found = ood_metrics(values[id_rows], values[ood_rows])
            results.setdefault(name, []).append((found.auroc, found.fpr_at_95_tpr))
    print(f"\n2. Held-out classes: trained on digits 0-{known - 1}; test images of 0-{known - 1} in distribution "
          f"({int(id_rows.sum())}), of {known}-9 out ({int(ood_rows.sum())}); mean of {seeds} seeds")
    print(f"{'detector':<24} {'AUROC':>8} {'FPR95':>8}")
    for name, values in sorted(results.items(), key=lambda item: -statistics.mean(v[0] for v in item[1])):
        print(f"{name:<24} {statistics.mean(v[0] for v in values):>8.4f} {statistics.mean(v[1] for v in values):>8.4f}")


DETECTION_STRATEGIES = ("random", "entropy", "hybrid")


def detection_rounds(seeds: int, epochs: int, shares: tuple[float, ...]) -> None:
    """The demo detection project's data, its detector and training settings (fewer epochs per round: a CPU
    budget), rounds from shares[0] of the training split to shares[-1]; test mAP50-95 per labelled count."""
    import logging
    import tempfile

    from torch.utils.data import DataLoader

    from compiler.load import load_spec
    from runtime.detections import detect_batch
    from stages.detection.train import DetectionInputs
    from vision.detection.data import LetterboxedImages, collate
    from vision.detection.metrics import mean_average_precision
    from vision.detection.model import DetectorConfig
    from vision.detection.predict import predict_split
    from vision.loop.choose import detection_round

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from detection import SPEC, _data, _decoding

    logging.getLogger("lightning").setLevel(logging.ERROR)
    spec = load_spec(SPEC, SPEC.parents[1]).spec
    d = spec.detection
    assert d is not None
    config = DetectorConfig(spec.model.backbone, tuple(spec.classes), d.size_wh(), tuple(d.strides), d.fpn_channels,
                            d.head_convs, d.center_sampling_radius)
    decoding = _decoding(spec)
    training = spec.train.model_copy(update={"epochs": epochs, "hpo": None})
    table: dict[str, dict[int, list[float]]] = {s: {} for s in DETECTION_STRATEGIES}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autodl-al-detection-") as work:
        train_split, val, test = _data(spec, Path(work), None)
        n = len(train_split)
        counts = [round(share * n) for share in shares]

        @torch.inference_mode()
        def scored(model: torch.nn.Module, indices: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
            model.eval()
            scores, pooled = [], []
            loader = DataLoader(LetterboxedImages(train_split.take(indices.tolist()), decoding.input_wh),
                                batch_size=16, collate_fn=collate)
            for x, _, fits in loader:
                logits, regression, centerness, features = model(x)
                found = detect_batch(logits.float().numpy(), regression.float().numpy(),
                                     centerness.float().numpy(), decoding, fits)
                scores.extend(f.scores for f in found)
                pooled.append(features.float().numpy())
            return scores, unit(np.concatenate(pooled))

        for seed in range(seeds):
            start = np.random.default_rng(seed).choice(n, counts[0], replace=False)
            for strategy in DETECTION_STRATEGIES:
                labelled = start.copy()
                for r, count in enumerate(counts):
                    inputs = DetectionInputs(train_split.take(labelled.tolist()), val, config, spec.model.pretrained,
                                             training, d, spec.augment, 1000 * seed + r)
                    model = inputs.fit(config, spec.model.pretrained, training, progress=False).model
                    found = predict_split(model, test, decoding)
                    mean_ap = mean_average_precision(found, test.boxes, test.labels, spec.classes)["map"]
                    table[strategy].setdefault(count, []).append(float(mean_ap))
                    if r + 1 == len(counts):
                        break
                    unlabelled = np.setdiff1d(np.arange(n), labelled)
                    scores, pooled = scored(model, unlabelled)
                    _, covered = scored(model, labelled)
                    decided = detection_round(Choice(strategy, counts[r + 1] - count, 1000 * seed + r), scores,
                                              pooled, covered, (0.1, 0.5))
                    labelled = np.concatenate([labelled, unlabelled[decided.queue]])
                print(f"  detection seed {seed} {strategy:<8}: mAP50-95 {table[strategy][counts[-1]][-1]:.4f} at "
                      f"{counts[-1]} images ({time.perf_counter() - started:.0f} s so far)", flush=True)
    print(f"\n3. The demo detector (digits on photos, {n} training images): test mAP50-95 by labelled images, "
          f"{epochs} epochs per round from the offline ImageNet weights, mean of {seeds} seed(s)")
    print(f"{'labelled':>9}  " + " ".join(f"{s:>10}" for s in DETECTION_STRATEGIES))
    for count in counts:
        print(f"{count:>9}  " + " ".join(f"{statistics.mean(table[s][count]):>10.4f}" for s in DETECTION_STRATEGIES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--end", type=float, default=0.30, help="last labelled share (default 0.30)")
    parser.add_argument("--skip-rounds", action="store_true")
    parser.add_argument("--skip-ood", action="store_true")
    parser.add_argument("--detection", action="store_true",
                        help="also the demo detector's rounds (about 15 minutes per seed on 2 cores)")
    parser.add_argument("--detection-seeds", type=int, default=1)
    parser.add_argument("--detection-epochs", type=int, default=6)
    parser.add_argument("--detection-shares", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5],
                        help="labelled shares of the training split, one round each (default 0.1 ... 0.5)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = digits()
    if not args.skip_rounds:
        table, full = rounds(data, args.seeds, args.end)
        print_rounds(table, full, len(data.pool_y), args.seeds)
    if not args.skip_ood:
        held_out_classes(data, args.seeds)
    if args.detection:
        detection_rounds(args.detection_seeds, args.detection_epochs, tuple(args.detection_shares))


if __name__ == "__main__":
    main()
