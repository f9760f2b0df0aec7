"""How fast is `autodl compile`? Ten specs, timed in-process and as the CLI a pull request runs.

Target: compiling 10 specs takes < 1 s end to end (interpreter start included).
Usage: python benchmarks/compile_speed.py [--specs 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from compiler.compile import compile_repo  # noqa: E402


def make_repo(root: Path, count: int) -> None:
    """`count` projects derived from the default spec, each with different settings."""
    (root / "specs").mkdir()
    base = (REPO / "specs" / "digits.yaml").read_text()
    for i in range(count):
        name = f"project-{i:02d}"
        text = base.replace("name: digits", f"name: {name}").replace("seed: 7", f"seed: {i}")
        text = text.replace("epochs: 15", f"epochs: {10 + i}")
        (root / "specs" / f"{name}.yaml").write_text(text)


def time_in_process(root: Path, repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats):
        for generated in ("params.yaml", "dvc.yaml"):
            (root / generated).unlink(missing_ok=True)
        started = time.perf_counter()
        compile_repo(root)
        timings.append(time.perf_counter() - started)
    return timings


def time_cli(root: Path, repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats):
        (root / "params.yaml").unlink(missing_ok=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cli.main", "--root", str(root), "compile"], cwd=REPO,
                       check=True, capture_output=True)
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="autodl-bench-"))
    try:
        make_repo(root, args.specs)
        time_in_process(root, 1)  # warm imports and caches once
        rows = [("in-process (load + plan + emit + write)", time_in_process(root, args.repeats)),
                ("CLI `autodl compile` (new interpreter)", time_cli(root, args.repeats))]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"autodl compile, {args.specs} specs, {args.repeats} runs each (median / min / max, seconds)")
    print(f"{'mode':<42} {'median':>8} {'min':>8} {'max':>8}  target < 1 s")
    for label, timings in rows:
        median = statistics.median(timings)
        print(f"{label:<42} {median:8.3f} {min(timings):8.3f} {max(timings):8.3f}  "
              f"{'met' if median < 1.0 else 'MISSED'} ({1.0 / median:.1f}x under)")


if __name__ == "__main__":
    main()
