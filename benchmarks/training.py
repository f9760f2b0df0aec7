"""Training on the default digits spec: accuracy and wall time, Lightning overhead, transfer learning.

1. The spec as `dvc repro` runs it (pruned training split, augmentations, optuna
   search, final training): test accuracy against the 98.5% target, search and
   training wall time.
2. Throughput of the Lightning training step against a plain PyTorch loop: same
   model, data, batch size, optimizer and epochs, measured side by side (target:
   Lightning >= 90% of the plain loop's images/s).
3. Transfer learning on 20% of the training split: EfficientNet-Lite0 from the
   offline ImageNet weights against the same network from scratch.
Usage: python benchmarks/training.py [--skip-spec] [--skip-throughput] [--skip-transfer]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from _digits import Prepared, prepare

from vision.training.model import accuracy


def _load(prep: Prepared, work: Path, config, split: str):
    from vision.data.dataset import load_split

    return load_split(work, prep.split_csv, split, config.classes, config.input_size_px)


def _pruned(prep: Prepared, data, budget: float, method: str):
    from vision.data.selection import select_per_class

    train_rows = np.array([s == "train" for s in prep.split])
    labels = [r.label for r, s in zip(prep.records, prep.split, strict=True) if s == "train"]
    keep = select_per_class(prep.vectors[train_rows], labels, budget, method, prep.spec.seed)
    return data.take(keep)


def spec_table(prep: Prepared, work: Path) -> None:
    from stages.train import TrainInputs, train_model, with_params
    from stages.training import search_hyperparameters
    from vision.training.model import ModelConfig

    spec = prep.spec
    config = ModelConfig(spec.model.backbone, list(spec.classes), spec.model.input_size_px, spec.model.drop_rate,
                         spec.model.pretrained)
    train = _pruned(prep, _load(prep, work, config, "train"), spec.data.pruning.budget, spec.data.pruning.method)
    val, test = _load(prep, work, config, "val"), _load(prep, work, config, "test")
    training, hpo_seconds, trials = spec.train, 0.0, 0
    if training.hpo:
        started = time.perf_counter()
        found = search_hyperparameters(TrainInputs(train, val, config, training, spec.augment, spec.seed), work / "hpo")
        hpo_seconds, trials = time.perf_counter() - started, found.new_trials
        training, config = with_params(training, config, found.best_params)
    started = time.perf_counter()
    result = train_model(train, val, config, training, spec.seed, spec.augment, progress=False)
    train_seconds = time.perf_counter() - started
    test_accuracy = accuracy(result.model, test)
    print(f"\n1. Default spec ({spec.model.backbone} {config.input_size_px}px, {len(train.labels)} training images "
          f"after pruning, {len(test.labels)} test images)")
    verdict = "met" if test_accuracy >= 0.985 else "MISSED"
    print(f"{'test accuracy':<34} {test_accuracy:.4f}  (target >= 0.985: {verdict})")
    print(f"{'hyperparameter search':<34} {hpo_seconds:6.1f} s  ({trials} trials)")
    print(f"{'final training':<34} {train_seconds:6.1f} s  ({len(result.history)} epochs)")


def throughput_table(prep: Prepared, work: Path, epochs: int = 3) -> None:
    import lightning as L
    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader

    from vision.data.dataset import CleanImages
    from vision.training.engine import optimizer_for
    from vision.training.fit import Classifier
    from vision.training.model import ModelConfig, build_model

    spec = prep.spec
    config = ModelConfig(spec.model.backbone, list(spec.classes), spec.model.input_size_px)
    dataset = CleanImages(_load(prep, work, config, "train"))
    images = len(dataset) * epochs

    def loader() -> DataLoader:
        return DataLoader(dataset, batch_size=spec.train.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(0))

    def plain() -> float:
        torch.manual_seed(0)
        model = build_model(config).train()
        optimizer = optimizer_for(model.parameters(), spec.train)
        started = time.perf_counter()
        for _ in range(epochs):
            for x, y in loader():
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
        return images / (time.perf_counter() - started)

    def lightning() -> float:
        torch.manual_seed(0)
        training = spec.train.model_copy(update={"scheduler": spec.train.scheduler.model_copy(update={"name": "none"})})
        module = Classifier(build_model(config), training, bn_loader=loader())
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            num_sanity_val_steps=0, default_root_dir=str(work))
        started = time.perf_counter()
        trainer.fit(module, loader())
        return images / (time.perf_counter() - started)

    rates: dict[str, list[float]] = {"plain PyTorch loop": [], "Lightning": []}
    for _ in range(3):  # interleaved, so both see the same machine state
        rates["plain PyTorch loop"].append(plain())
        rates["Lightning"].append(lightning())
    best = {name: max(values) for name, values in rates.items()}
    print(f"\n2. Training throughput ({spec.model.backbone} {config.input_size_px}px, batch {spec.train.batch_size}, "
          f"{epochs} epochs of {len(dataset)} images, best of 3 interleaved runs)")
    for name, rate in best.items():
        print(f"{name:<34} {rate:8.0f} images/s")
    ratio = best["Lightning"] / best["plain PyTorch loop"]
    print(f"{'Lightning / plain':<34} {ratio:8.1%}  (target >= 90%: {'met' if ratio >= 0.9 else 'MISSED'})")


def transfer_table(prep: Prepared, work: Path, budget: float = 0.2, size_px: int = 64, epochs: int = 12) -> None:
    from stages.train import train_model
    from vision.training.model import ModelConfig

    spec = prep.spec
    training = spec.train.model_copy(update={"epochs": epochs, "hpo": None})
    print(f"\n3. Transfer learning: EfficientNet-Lite0 at {size_px}px, {epochs} epochs, random {budget:.0%} of the "
          f"training split")
    print(f"{'start':<34} {'test acc':>8} {'kept val':>8} {'seconds':>8}")
    for label, pretrained in (("ImageNet weights (offline)", "efficientnet_lite0_imagenet"), ("from scratch", None)):
        config = ModelConfig("tf_efficientnet_lite0", list(spec.classes), size_px, 0.2, pretrained)
        train = _pruned(prep, _load(prep, work, config, "train"), budget, "random")
        started = time.perf_counter()
        result = train_model(train, _load(prep, work, config, "val"), config, training, spec.seed, progress=False)
        seconds = time.perf_counter() - started
        print(f"{label:<34} {accuracy(result.model, _load(prep, work, config, 'test')):8.4f} "
              f"{result.val_accuracy:8.4f} {seconds:8.1f}   ({len(train.labels)} training images)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-spec", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-transfer", action="store_true")
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="autodl-train-bench-") as folder:
        work = Path(folder)
        prep = prepare(work)
        if not args.skip_spec:
            spec_table(prep, work)
        if not args.skip_throughput:
            throughput_table(prep, work)
        if not args.skip_transfer:
            transfer_table(prep, work)


if __name__ == "__main__":
    main()
