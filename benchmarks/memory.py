"""Peak resident memory of every pipeline stage at two data sizes: memory that stays flat as the data grows.

A project of grey 250 x 250 fabric images (benchmarks/_fabric.py) in an image
folder, trained and measured at 224 px, is compiled and each stage's command
from the generated dvc.yaml is run in order, once with N images and once with
4N. Each stage's peak RSS is read from the kernel's accounting of that process
and its children (wait4's ru_maxrss), so nothing samples or misses a peak. A
stage whose memory grew with the data shows a ratio well above 1.

`--code DIR` runs another checkout's stages (e.g. a `git worktree` of an older
commit) on the same data, to compare before and after.
Usage: python benchmarks/memory.py [--images N] [--code DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("cli", "compiler", "core", "ops", "runtime", "serving", "stages", "vision")

SPEC = """\
name: mem
seed: 0
classes: [nominal, local_defect, global_defect]
data:
  sources: [{kind: image_folder, path: data/raw/fabric}]
  split: {train: 0.6, val: 0.2, test: 0.2}
  quality: {min_images_per_class: 10}
  embedding: {input_size_px: 64}
augment: {occlusion: 0.3, low_light: 0.2}
model: {backbone: resnet10t, input_size_px: 224}
train: {epochs: 1, batch_size: 32}
compress: {budget: {max_accuracy_drop: 1.0}, methods: [structured_prune, quantize], prune_steps: 1,
           finetune_epochs: 1}
dependability: {min_accuracy: 0.0, ood: {detector: energy, min_auroc: 0.0, max_accepted_fraction: 1.0},
                explain: {gradcam_samples: 4},
                robustness: {corruptions: [fog, gaussian_noise, occlusion], severities: [1, 3],
                             max_accuracy_drop: 1.0},
                calibration: {max_ece: 1.0}}
"""


def make_project(root: Path, code: Path, images: int) -> None:
    from _fabric import CLASSES, fabric
    from PIL import Image

    for folder in CODE_FOLDERS:
        shutil.copytree(code / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "specs").mkdir()
    (root / "specs" / "mem.yaml").write_text(SPEC)
    third = images // 3
    pictures, labels = fabric({name: third for name in CLASSES})
    for i, (picture, label) in enumerate(zip(pictures, labels, strict=True)):
        folder = root / "data/raw/fabric" / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(folder / f"{i:05d}.png")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "cli.main", "compile"], cwd=root, check=True, capture_output=True)


def _peak_mb(root: Path, command: str) -> tuple[float, float, int]:
    """(peak RSS in MB of the stage's process tree, seconds, exit code)."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
               AUTODL_PROGRESS_EVERY_S="600")
    started = time.perf_counter()
    process = subprocess.Popen(["bash", "-c", command], cwd=root, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(process.stderr.read().decode()[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, seconds, code


def measure(code: Path, images: int) -> dict[str, tuple[float, float, int]]:
    with tempfile.TemporaryDirectory(prefix="autodl-memory-") as folder:
        root = Path(folder)
        # made in a process of its own: a forked child starts with this process's resident pages counted in its
        # peak, so this process stays small and holds no image
        subprocess.run([sys.executable, __file__, "--make-project", str(root), "--code", str(code), "--images",
                        str(images)], check=True)
        stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
        return {name.removeprefix("mem-"): _peak_mb(root, stage["cmd"]) for name, stage in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="images in the smaller run (the larger has 4x)")
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout whose stages run")
    parser.add_argument("--make-project", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_project:
        make_project(args.make_project, args.code, args.images)
        return
    small, large = args.images, 4 * args.images
    runs = {n: measure(args.code.resolve(), n) for n in (small, large)}
    print(f"Peak resident memory per stage (MB), fabric images at 224 px, {os.cpu_count()} cores, code from "
          f"{args.code}")
    print(f"{'stage':<14} {f'{small} images':>12} {f'{large} images':>12} {'ratio':>6} {'seconds':>15}")
    for stage in runs[small]:
        a, b = runs[small][stage], runs[large][stage]
        failed = " (failed)" if a[2] or b[2] else ""
        print(f"{stage:<14} {a[0]:>12.0f} {b[0]:>12.0f} {b[0] / a[0]:>6.2f} {a[1]:>7.0f} {b[1]:>7.0f}{failed}")


if __name__ == "__main__":
    main()
