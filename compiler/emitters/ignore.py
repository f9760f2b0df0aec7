"""`data/.gitignore`, `models/.gitignore`, `reports/.gitignore`: git ignores every output DVC caches.

DVC writes its own `.gitignore` entries beside each output as stages finish, and rolls them back when a
later stage of the same `dvc repro` fails (treeverse/dvc#11091): a gate that refuses a new project's first
model would leave thousands of pipeline outputs untracked in `git status`. These files list every cached
output of every project from the IR, so the rules hold whatever DVC does.
"""

from __future__ import annotations

from collections import defaultdict

from compiler.emitters import EmitContext, header


class IgnoreEmitter:
    name = "gitignore"

    def emit(self, ctx: EmitContext) -> dict[str, str]:
        by_top: dict[str, set[str]] = defaultdict(set)
        for pipeline in ctx.pipelines:
            for stage in pipeline.stages:
                for output in (*stage.outs, *stage.persist):
                    top, _, rest = output.partition("/")
                    by_top[top].add(f"/{rest}")
        sources = [s.path for s in ctx.specs] + ["core/registry.py"]
        return {f"{top}/.gitignore": header("#", sources) + "".join(f"{line}\n" for line in sorted(lines))
                for top, lines in sorted(by_top.items())}
