"""Transfer learning on CPU: training throughput per mode, and what the search finds on a small-defect task.

1. Throughput of EfficientNet-Lite0 (offline ImageNet weights) at 128 and 224 px
   on the fabric proxy (benchmarks/_fabric.py), in images per second of
   training: a plain PyTorch loop in the ordinary memory layout (how training
   ran before channels-last) and in channels-last (the model's own limit),
   then the train stage's modes as `fit_with_mode` runs them over 3 epochs,
   validation and the one-time activation cache included: full fine-tuning,
   the first 2 and 4 levels frozen (split off, their activations computed once
   per image: no augmentation here), and the linear probe (features computed
   once, then 20 epochs of the head).
2. The fabric proxy as a new user meets it: the README-style setting
   (Lite0 at 128 px, full fine-tuning, a learning-rate search) against the
   automatic search over input size (the native 256 px added by the stage),
   frozen levels and class balance, with test macro-F1 and wall time side by
   side.
3. The minimal spec: only name, classes, the image folder and
   `train.hpo.budget_minutes`, run by `dvc repro` in a fresh repository
   (ingest to evaluate, or to the gate with --gate): what `model: auto`,
   `augment: auto` and the budget plan chose, the train stage's wall time, and
   test accuracy and every class's recall.
Usage: python benchmarks/transfer.py [--skip-throughput] [--skip-search] [--minimal] [--gate] [--keep DIR]
       [--images N] [--budget MINUTES]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _fabric import CLASSES, fabric

from core.spec.training import Hpo, SearchDimension, TrainSection
from vision.data.dataset import SplitData
from vision.training.model import ModelConfig, build_model

BATCH = 32


def _split(images: list[np.ndarray], labels: list[str], size: int, indices: np.ndarray,
           classes: list[str] | tuple[str, ...] = tuple(CLASSES)) -> SplitData:
    from PIL import Image

    rgb = np.stack([np.asarray(Image.fromarray(images[i]).convert("RGB").resize((size, size),
                                                                                  Image.Resampling.BILINEAR))
                    for i in indices])
    return SplitData(rgb, np.array([list(classes).index(labels[i]) for i in indices]), [f"{i}.png" for i in indices])


def _splits(images, labels, size: int, seed: int = 0,
            classes: list[str] | tuple[str, ...] = tuple(CLASSES)) -> tuple[SplitData, SplitData, SplitData]:
    order = np.random.default_rng(seed).permutation(len(labels))
    cut1, cut2 = int(0.6 * len(order)), int(0.8 * len(order))
    return tuple(_split(images, labels, size, part, classes)
                 for part in (order[:cut1], order[cut1:cut2], order[cut2:]))


def _lite0(size: int, classes: list[str] | tuple[str, ...] = tuple(CLASSES)) -> torch.nn.Module:
    """Lite0 with its ImageNet weights and a new head, drawn from seed 0: the head's initial weights would
    otherwise depend on whatever ran before in the process."""
    torch.manual_seed(0)
    return build_model(ModelConfig("tf_efficientnet_lite0", list(classes), size, 0.2, "efficientnet_lite0_imagenet"))


def plain_loop(train: SplitData, channels_last: bool) -> float:
    """Images per second of a bare training loop: the same model, batch and optimizer, nothing else."""
    from vision.data.dataset import to_tensor

    torch.manual_seed(0)
    model = _lite0(int(train.images.shape[1])).train()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    for start in range(0, len(train.labels), BATCH):
        x = to_tensor(train.images[start:start + BATCH]).contiguous(memory_format=layout)
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(train.labels[start:start + BATCH]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return len(train.labels) / (time.perf_counter() - started)


def mode_rate(train: SplitData, val: SplitData, freeze: int | str, epochs: int) -> tuple[float, float]:
    """(images per second over the run, val accuracy) of the train stage's mode, validation included."""
    from vision.training.modes import fit_with_mode

    torch.manual_seed(0)
    model = _lite0(int(train.images.shape[1]))
    started = time.perf_counter()
    result = fit_with_mode(model, train, val, TrainSection(epochs=epochs, batch_size=BATCH, freeze=freeze), 0,
                           progress=False)
    return epochs * len(train.labels) / (time.perf_counter() - started), result.val_accuracy


def throughput_table(images, labels) -> None:
    print("1. Training throughput, EfficientNet-Lite0 from ImageNet weights, batch 32, "
          f"{torch.get_num_threads()} threads (images/s; x = against the plain loop in the ordinary layout)")
    print(f"{'size':>5} {'mode':<44} {'images/s':>9} {'x':>6}")
    for size in (128, 224):
        train, val, _ = _splits(images, labels, size)
        rows = [("plain PyTorch loop, ordinary layout (before)", plain_loop(train, False)),
                ("plain PyTorch loop, channels-last", plain_loop(train, True)),
                ("train stage: full fine-tuning", mode_rate(train, val, 0, 3)[0]),
                ("train stage: first 2 levels frozen", mode_rate(train, val, 2, 3)[0]),
                ("train stage: first 4 levels frozen", mode_rate(train, val, 4, 3)[0]),
                ("train stage: linear probe, 20 epochs", mode_rate(train, val, "all", 20)[0])]
        base = rows[0][1]
        for label, rate in rows:
            print(f"{size:>5} {label:<44} {rate:>9.1f} {rate / base:>6.1f}")


def _macro_f1(model: torch.nn.Module, test: SplitData) -> float:
    from sklearn.metrics import f1_score

    from vision.data.dataset import to_tensor
    from vision.training.model import predict_logits

    return float(f1_score(test.labels, predict_logits(model, to_tensor(test.images)).argmax(1).numpy(),
                          average="macro"))


def search_table(images, labels, work: Path) -> None:
    """The README-style setting against the automatic search, both through the train stage's own functions."""
    from stages.train import TrainInputs, train_model, with_native_size, with_params
    from stages.training import search_hyperparameters

    print("\n2. Fabric proxy (small local defect): README-style setting against the automatic search")
    print(f"{'setting':<58} {'test macro-F1':>13} {'minutes':>8}")
    manifest = work / "manifest.csv"
    manifest.write_text("width,height\n" + "".join(f"{im.shape[1]},{im.shape[0]}\n" for im in images))
    settings = {
        "README-style: Lite0 128 px, full fine-tuning, lr search": TrainSection(
            epochs=8, batch_size=BATCH, hpo=Hpo(trials=3, epochs_per_trial=2, space={
                "lr": SearchDimension(low=1e-4, high=3e-3, log=True)})),
        "automatic: input size (+native), freeze, balance, lr": TrainSection(
            epochs=8, batch_size=BATCH, select_by="val_macro_f1", hpo=Hpo(trials=8, epochs_per_trial=2, space={
                "input_size_px": SearchDimension(choices=[128]), "freeze": SearchDimension(choices=[2, 4, "all"]),
                "balance": SearchDimension(choices=["none", "sampler"]),
                "lr": SearchDimension(low=3e-4, high=3e-3, log=True)})),
    }
    for label, training in settings.items():
        training = with_native_size(training, manifest)
        config = ModelConfig("tf_efficientnet_lite0", CLASSES, 128, 0.2, "efficientnet_lite0_imagenet")
        train, val, _ = _splits(images, labels, 128)
        inputs = TrainInputs(train, val, config, training, None, 0)
        inputs._resized.update({size: _splits(images, labels, size)[:2] for size in
                                (training.hpo.space.get("input_size_px") or SearchDimension(choices=[])).choices
                                if size != 128})
        started = time.perf_counter()
        found = search_hyperparameters(inputs, work / label[:6])
        final, config = with_params(training, config, found.best_params)
        train, val, test = _splits(images, labels, config.input_size_px)
        result = train_model(train, val, config, final.model_copy(update={"hpo": None}), 0, progress=False)
        minutes = (time.perf_counter() - started) / 60
        print(f"{label:<58} {_macro_f1(result.model, test):>13.3f} {minutes:>8.1f}   best {found.best_params}")


MINIMAL_SPEC = """\
name: fabric
classes: [nominal, local_defect, global_defect]
data:
  sources:
    - {{kind: image_folder, path: raw}}
train:
  hpo: {{budget_minutes: {budget:g}}}
"""


def _fresh_repository(folder: Path, spec: str, data: Callable[[Path], None]) -> Path:
    """A new repository with this project's code, one spec and its data (`data` writes them), compiled: what a
    user's clone holds."""
    import subprocess
    import sys

    from ops.workspace import copy_project_code

    copy_project_code(folder)
    (folder / "specs").mkdir()
    (folder / "specs" / "fabric.yaml").write_text(spec)
    data(folder)
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                    [sys.executable, "-m", "cli.main", "compile"]):
        subprocess.run(command, cwd=folder, check=True, capture_output=True)
    return folder


def _stage_minutes(log: list[tuple[float, str]], stage: str) -> float:
    """Minutes from the line DVC starts `stage` with to the next stage's start (or the end)."""
    starts = [(t, line) for t, line in log if line.startswith("Running stage")]
    for index, (started, line) in enumerate(starts):
        if f"'{stage}'" in line:
            ended = starts[index + 1][0] if index + 1 < len(starts) else log[-1][0]
            return (ended - started) / 60
    return float("nan")


def minimal_spec_row(images, labels, work: Path, budget: float, gate: bool) -> None:
    """The minimal spec through `dvc repro` in a fresh repository, timed line by line."""
    import json
    import subprocess
    import sys

    from PIL import Image

    from ops.workspace import command_environment

    print(f"\n3. Minimal spec (name, classes, sources, train.hpo.budget_minutes: {budget:g}) through dvc repro, "
          f"{len(labels)} fabric images, {torch.get_num_threads()} threads")

    def image_folder(repo: Path) -> None:
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            (repo / "raw" / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(repo / "raw" / label / f"{index:05d}.png")

    repo = _fresh_repository(work / "minimal", MINIMAL_SPEC.format(budget=budget), image_folder)
    target = "fabric-gate" if gate else "fabric-evaluate"
    started, log = time.perf_counter(), []
    with subprocess.Popen([sys.executable, "-m", "dvc", "repro", target], cwd=repo, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=command_environment()) as process:
        assert process.stdout is not None
        for line in process.stdout:
            log.append((time.perf_counter() - started, line.rstrip()))
            if line.startswith(("train:", "gate:", "Running stage")):
                print(f"   {log[-1][0] / 60:5.1f} min  {line.rstrip()}", flush=True)
    if process.returncode != 0 and not (repo / "reports/fabric/evaluate/metrics.json").is_file():
        raise SystemExit("dvc repro failed:\n" + "\n".join(line for _, line in log[-40:]))
    metrics = json.loads((repo / "reports/fabric/evaluate/metrics.json").read_text())
    per_class = json.loads((repo / "reports/fabric/evaluate/per_class.json").read_text())
    recalls = ", ".join(f"{name} {row['recall']:.3f}" for name, row in per_class.items())
    chosen = json.loads((repo / "reports/fabric/train/metrics.json").read_text())
    print(f"{'setting':<58} {'test acc':>8} {'min recall':>10} {'train min':>9}")
    print(f"{'minimal spec, budget ' + format(budget, 'g') + ' min':<58} {metrics['accuracy']:>8.3f} "
          f"{min(row['recall'] for row in per_class.values()):>10.3f} {_stage_minutes(log, 'fabric-train'):>9.1f}")
    print(f"   recall per class: {recalls}; model {chosen['model']['backbone']} at "
          f"{chosen['model']['input_size_px']} px; plan {chosen['hpo'].get('plan')}; exit {process.returncode}")
    if gate:
        verdict = json.loads((repo / "reports/fabric/gate/verdict.json").read_text())
        failed = [c["name"] for c in verdict["checks"] if not c["passed"]]
        print(f"   gate: {'passed' if verdict['passed'] else 'refused: ' + ', '.join(failed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--minimal", action="store_true", help="also run the minimal spec through dvc repro")
    parser.add_argument("--gate", action="store_true", help="the minimal spec's run goes on to the gate")
    parser.add_argument("--budget", type=float, default=20.0, help="the minimal spec's budget_minutes")
    parser.add_argument("--keep", type=Path, help="keep the minimal spec's repository in this folder (its trained "
                        "model then feeds benchmarks/compression.py --trained-repo DIR/minimal)")
    parser.add_argument("--images", type=int, default=600, help="fabric images in all (half nominal)")
    args = parser.parse_args()
    logging.getLogger("lightning").setLevel(logging.ERROR)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quarter = args.images // 4
    images, labels = fabric({"nominal": args.images - 2 * quarter, "local_defect": quarter,
                             "global_defect": quarter})
    if not args.skip_throughput:
        throughput_table(images, labels)
    if not args.skip_search:
        with tempfile.TemporaryDirectory(prefix="autodl-transfer-") as folder:
            search_table(images, labels, Path(folder))
    if args.minimal and args.keep:
        minimal_spec_row(images, labels, args.keep.resolve(), args.budget, args.gate)
    elif args.minimal:
        with tempfile.TemporaryDirectory(prefix="autodl-minimal-") as folder:
            minimal_spec_row(images, labels, Path(folder), args.budget, args.gate)


if __name__ == "__main__":
    main()
