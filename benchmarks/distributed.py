"""DDP against one process: the default spec's real train stage on the pipeline's own data, side by side.

Copies the default project's inputs of the train stage (data/<p>/ingest, data/<p>/prune: run `make demo`
first) into two scratch repositories with the spec minus `train.hpo` (a distributed run needs a shared
study; the comparison is about training), then runs `python -m stages.train` once as one process and once
under `torchrun --standalone --nproc_per_node N` (Lightning DDP, gloo, N CPU processes on this machine),
and prints test accuracy and wall time of both. Both runs use the same cores: any speed-up here comes from
the per-batch Python work (augmentation, data handling) that one process does serially; the point is equal
quality on the path a cluster takes.
Usage: python benchmarks/distributed.py [--spec specs/digits.yaml] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _digits import REPO
from ruamel.yaml import YAML


def _repo(root: Path, spec_path: Path, project: str) -> Path:
    yaml = YAML()
    spec = yaml.load(spec_path.read_text())
    spec["train"].pop("hpo", None)
    (root / "specs").mkdir(parents=True)
    with (root / "specs" / f"{project}.yaml").open("w") as handle:
        yaml.dump(spec, handle)
    subprocess.run([sys.executable, "-m", "cli.main", "--root", str(root), "compile"], cwd=REPO, check=True,
                   capture_output=True)
    for stage in ("ingest", "prune"):
        shutil.copytree(REPO / "data" / project / stage, root / "data" / project / stage)
    return root


def _train(root: Path, project: str, launcher: list[str]) -> float:
    """The train stage as dvc.yaml runs it (its inputs' paths on the command line), under `launcher`."""
    stages = YAML(typ="safe").load((root / "dvc.yaml").read_text())["stages"]
    program, *arguments = shlex.split(stages[f"{project}-train"]["cmd"])
    assert program == "python"
    started = time.perf_counter()
    subprocess.run([sys.executable, *launcher, *arguments, "--root", str(root)], cwd=REPO, check=True,
                   capture_output=True)
    return time.perf_counter() - started


def _test_accuracy(root: Path, project: str) -> float:
    import numpy as np
    import torch

    from vision.data.dataset import load_split, to_tensor
    from vision.training.model import load_model

    model, config = load_model(root / "models" / project / "train")
    test = load_split(root / "data" / project / "ingest", root / "data" / project / "prune" / "split.csv", "test",
                      config.classes, config.input_size_px)
    with torch.no_grad():
        predicted = model.eval()(to_tensor(test.images[:])).argmax(1).numpy()
    return float(np.mean(predicted == test.labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "digits.yaml")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    from compiler.load import load_spec

    project = load_spec(args.spec, REPO).spec.name
    if not (REPO / "data" / project / "prune").is_dir():
        raise SystemExit(f"data/{project}/prune missing: run `make demo` first")
    with tempfile.TemporaryDirectory(prefix="autodl-ddp-") as scratch:
        single, ddp = (_repo(Path(scratch) / name, args.spec, project) for name in ("single", "ddp"))
        rows = [("one process", _train(single, project, []), single),
                (f"DDP, {args.processes} processes (gloo)",
                 _train(ddp, project, ["-m", "torch.distributed.run", "--standalone",
                                       f"--nproc_per_node={args.processes}"]), ddp)]
        print(f"{project}: the train stage without HPO, same data and settings, on this machine's cores")
        print(f"{'':<28} {'test accuracy':>13} {'kept val':>9} {'epochs':>7} {'seconds':>8}")
        for label, seconds, root in rows:
            metrics = json.loads((root / "reports" / project / "train" / "metrics.json").read_text())
            print(f"{label:<28} {_test_accuracy(root, project):>13.4f} {metrics['val_accuracy']:>9.4f} "
                  f"{metrics['epochs_run']:>7} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
