"""The thin CLI every stage shares: `python -m stages.<name> --project <p>`.

It reads `params.yaml`, hands the stage only the keys its contract declares (reading any other key fails),
takes its inputs' paths by name from the command line (`--input split=data/p/prune/split.csv`, written by
`autodl compile` into dvc.yaml), and reports failures as one clear line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from core.contract import ContractError, StageInfo
from core.spec.keys import validated


class StageFailure(Exception):
    """An expected failure (bad data, unmet threshold): printed without a traceback, exit 1."""


class StageContext:
    """What a stage's CLI needs for one project: its declared params, and its inputs and outputs by name."""

    def __init__(self, info: StageInfo, project: str, params: dict[str, Any], root: Path,
                 inputs: dict[str, str] | None = None):
        self.info, self.project, self.params, self.root = info, project, params, root
        self.inputs = dict(inputs or {})

    def spec(self, key: str) -> Any:
        """A declared spec key (`data.quality`, `seed`), validated into the spec's own model or type. A section
        the contract declares only in part (`train` for compress) holds the declared keys and the defaults of the
        rest, never the project's values of undeclared keys."""
        raw: Any = self.params
        for part in key.split("."):
            raw = raw[part]  # KeyError for a key the contract does not declare
            if raw is None:
                break  # an unset section: every key under it is unset too
        try:
            return validated(key, raw)
        except ValueError as exc:
            raise StageFailure(str(exc)) from None

    def input(self, name: str) -> Path:
        """A named input: the path of the earlier stage's output the contract refers to, as the command gave it."""
        if name in self.info.optional_inputs or name in self.info.project_inputs:
            key = self.info.optional_inputs[name][1] if name in self.info.optional_inputs \
                else self.info.project_inputs[name].key
            if self.spec(key) is None:
                raise ContractError(f"stage {self.info.name} reads '{name}' only when {key} is set")
        elif name not in self.info.inputs:
            raise ContractError(f"stage {self.info.name} declares no input '{name}' (it has "
                                f"{', '.join(self.info.inputs) or 'none'})")
        if name not in self.inputs:
            raise StageFailure(f"no --input {name}=<path> was given: run the stage through `dvc repro`, whose "
                               "command names every input (`autodl compile` writes it)")
        return self.root / self.inputs[name]

    def output(self, name: str) -> Path:
        """A named output of this stage (a DVC output, a file inside one, a report, metric or plot)."""
        outputs = self.info.outputs()
        if name not in outputs:
            raise ContractError(f"stage {self.info.name} declares no output '{name}' (it has {', '.join(outputs)})")
        return self._fill(outputs[name])

    def inside(self, name: str) -> str:
        """A named file of this stage relative to the output folder holding it, for writing into that folder
        while it is being built (core.fsutil.atomic_directory)."""
        path = self.info.files.get(name)
        if path is None:
            raise ContractError(f"stage {self.info.name} declares no file '{name}'")
        folder = next(out for out in self.info.outs.values() if path.startswith(out + "/"))
        return path.removeprefix(folder + "/")

    def _fill(self, template: str) -> Path:
        return self.root / template.format(project=self.project)


def declared_params(all_params: dict[str, Any], project: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The nested subset of `all_params[project]` made of exactly the declared keys."""
    if project not in all_params:
        raise StageFailure(f"project '{project}' is not in params.yaml; run `autodl compile`")
    subset: dict[str, Any] = {}
    for key in keys:
        source: Any = all_params[project]
        target = subset
        *parents, last = key.split(".")
        try:
            for part in parents:
                if source[part] is None:  # an unset section (`active_learning: null`): every key under it is unset
                    target[part] = None
                    break
                source, target = source[part], target.setdefault(part, {})
            else:
                target[last] = source[last]
        except (KeyError, TypeError):
            raise StageFailure(f"params.yaml has no {project}.{key}, which this stage reads: it was written by an "
                               "older `autodl compile`; run `autodl compile`") from None
    return subset


def input_paths(info: StageInfo, pairs: list[str]) -> dict[str, str]:
    """`name=path` arguments -> {name: path}, each name one the contract declares, each given once."""
    declared = {*info.inputs, *info.optional_inputs, *info.project_inputs}
    given: dict[str, str] = {}
    for pair in pairs:
        name, equals, path = pair.partition("=")
        if not equals or not path:
            raise StageFailure(f"--input {pair!r} is not name=path")
        if name not in declared:
            raise StageFailure(f"--input {name}: stage {info.name} declares no such input (it has "
                               f"{', '.join(sorted(declared)) or 'none'})")
        if name in given:
            raise StageFailure(f"--input {name} is given twice")
        given[name] = path
    return given


def run_stage(info: StageInfo, body: Callable[[StageContext], None], argv: list[str] | None = None) -> None:
    """Run `body` as the stage `info` declares (its module passes its own contract)."""
    parser = argparse.ArgumentParser(prog=f"python -m {info.module}", description=info.summary)
    parser.add_argument("--project", required=True, help="project name (a spec in specs/)")
    parser.add_argument("--params", default="params.yaml", help="params file written by `autodl compile`")
    parser.add_argument("--root", default=".", help="repository root")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=PATH",
                        help="the path of a named input, relative to the root (dvc.yaml names every one)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        inputs = input_paths(info, args.input)
        all_params = YAML(typ="safe", pure=True).load((root / args.params).read_text(encoding="utf-8"))
        body(StageContext(info, args.project, declared_params(all_params, args.project, info.params), root, inputs))
    except StageFailure as exc:
        print(f"{info.module}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
