"""The thin CLI every stage shares: `python -m stages.<name> --project <p>`.

It reads `params.yaml`, hands the stage only the keys the registry declares
for it (reading any other key fails), and reports failures as one clear line.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from compiler.fsutil import write_text_atomically
from stages.registry import STAGES_BY_NAME, StageInfo


class StageFailure(Exception):
    """An expected failure (bad data, unmet threshold): printed without a traceback, exit 1."""


class StageContext:
    """What a stage's CLI needs: its declared params and its output paths for one project."""

    def __init__(self, info: StageInfo, project: str, params: dict[str, Any], root: Path):
        self.info, self.project, self.params, self.root = info, project, params, root

    def path(self, template: str) -> Path:
        return self.root / template.format(project=self.project)

    def out(self, index: int = 0) -> Path:
        return self.path(self.info.outs[index])

    def dep(self, index: int) -> Path:
        return self.path(self.info.deps[index])

    def metric(self, index: int = 0) -> Path:
        return self.path(self.info.metrics[index])

    def plot(self, index: int = 0) -> Path:
        return self.path(self.info.plots[index].path)


def write_json(path: Path, data: Any) -> None:
    """Metrics and reports: stable formatting so `git diff` and `dvc metrics diff` stay readable."""
    write_text_atomically(path, json.dumps(data, indent=2) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]], fields: tuple[str, ...] | None = None) -> None:
    """Manifests, tables and plot data: one header, `\n` line ends, written atomically.

    `fields` picks and orders the columns (other keys are left out); by default every key of the rows in
    first-seen order (rows may differ, as trials with different searched params do). Missing values are empty.
    """
    columns = list(fields) if fields else list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, buffer.getvalue())


def read_json(path: Path) -> Any:
    """What an earlier stage wrote with write_json."""
    return json.loads(path.read_text(encoding="utf-8"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def declared_params(all_params: dict[str, Any], project: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The nested subset of `all_params[project]` made of exactly the declared keys."""
    if project not in all_params:
        raise StageFailure(f"project '{project}' is not in params.yaml; run `autodl compile`")
    subset: dict[str, Any] = {}
    for key in keys:
        source: Any = all_params[project]
        target = subset
        parts = key.split(".")
        for part in parts[:-1]:
            source = source[part]
            target = target.setdefault(part, {})
        target[parts[-1]] = source[parts[-1]]
    return subset


def run_stage(name: str, body: Callable[[StageContext], None], argv: list[str] | None = None) -> None:
    info = STAGES_BY_NAME[name]
    parser = argparse.ArgumentParser(prog=f"python -m {info.module}", description=info.summary)
    parser.add_argument("--project", required=True, help="project name (a spec in specs/)")
    parser.add_argument("--params", default="params.yaml", help="params file written by `autodl compile`")
    parser.add_argument("--root", default=".", help="repository root")
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        all_params = YAML(typ="safe", pure=True).load((root / args.params).read_text(encoding="utf-8"))
        body(StageContext(info, args.project, declared_params(all_params, args.project, info.params), root))
    except StageFailure as exc:
        print(f"{info.module}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
