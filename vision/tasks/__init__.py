"""The task seam: everything that assumes a kind of annotation ("one label per image") sits behind one
small interface per concern (vision.tasks.base.Task), and each task is a module registered here.

A new task (detection) arrives as a new module listed in TASKS and a serving response builder listed in
serving.responses; the stages ask `task(spec.task)` for the parts they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vision.tasks.base import Task

TASKS: dict[str, str] = {"classification": "vision.tasks.classification", "multilabel": "vision.tasks.multilabel"}
"""Task name (the spec's `task`) -> the module whose `TASK` implements it. Imported lazily: naming a task
must not import torch."""


def task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"no task '{name}' (known: {', '.join(sorted(TASKS))})")
    return importlib.import_module(TASKS[name]).TASK
