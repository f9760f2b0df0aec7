"""Run a great-expectations suite over one DataFrame as a real checkpoint and keep its Data Docs.

GX is the engine; this module only wires an ephemeral context (no `gx/` folder
in the repository), a Data Docs site in a folder we choose, and a fixed run id
so the same data gives the same result files.
"""

from __future__ import annotations

import datetime
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vision.data.data_docs import make_offline

FIXED_RUN_TIME = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class CheckResult:
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    observed: Any
    unexpected_count: int | None
    unexpected_examples: list[Any]


def run_checkpoint(table: pd.DataFrame, expectations: list[Any], docs_dir: Path, run_name: str
                   ) -> tuple[list[CheckResult], dict[str, Any]]:
    """Validate `table`; returns one CheckResult per expectation and GX's own result as JSON."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(site_name="autodl", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    batch = context.data_sources.add_pandas("autodl").add_dataframe_asset("images") \
        .add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name="data-quality"))
    for expectation in expectations:
        suite.add_expectation(_escaped_expectation(expectation))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="images", data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name="data-quality", validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data-docs", site_names=["autodl"])],
        result_format={"result_format": "SUMMARY"}))
    run = checkpoint.run(batch_parameters={"dataframe": escaped_strings(table)},
                         run_id=RunIdentifier(run_name=run_name, run_time=FIXED_RUN_TIME))
    normalise_data_docs(docs_dir)
    make_offline(docs_dir)
    validation = next(iter(run.run_results.values()))
    checks = [CheckResult(r.expectation_config.type,
                          _unescaped({k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}),
                          bool(r.success), _unescaped(_plain(r.result.get("observed_value"))),
                          r.result.get("unexpected_count"),
                          _unescaped(_plain(r.result.get("partial_unexpected_list") or [])))
              for r in validation.results]
    return checks, _unescaped(without_run_identity(validation.to_json_dict()))


# GX writes column values and expectation arguments into the Data Docs as raw HTML: a label or file name like
# `<img src=https://...>` (a folder name, a Label Studio export) would become markup in the page, a script
# that runs when someone opens it, or a fetch from another machine. GX validates escaped copies instead;
# html.escape is one-to-one, so set membership, uniqueness and counts are unchanged, and every value is
# unescaped again in what this module returns.
def escaped_strings(table: pd.DataFrame) -> pd.DataFrame:
    safe = table.copy()
    for column in safe.select_dtypes(include="object").columns:
        safe[column] = safe[column].map(lambda value: html.escape(value) if isinstance(value, str) else value)
    return safe


def _escaped_expectation(expectation: Any) -> Any:
    if isinstance(getattr(expectation, "value_set", None), list | tuple | set):
        escaped = [html.escape(v) if isinstance(v, str) else v for v in expectation.value_set]
        return expectation.copy(update={"value_set": escaped})  # GX models are pydantic v1
    return expectation


def _unescaped(value: Any) -> Any:
    if isinstance(value, str):
        return html.unescape(value)
    if isinstance(value, dict):
        return {key: _unescaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_unescaped(item) for item in value]
    return value


VOLATILE_KEYS = frozenset({"id", "validation_id", "checkpoint_id", "ge_load_time"})
"""GX stamps random UUIDs and the load time into every result; blanking them lets the same data give the
same result file (the checks, kwargs and observed values are untouched)."""


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_GX_TIMESTAMP = re.compile(r"\d{8}T\d{6}\.\d{6}Z")


def normalise_data_docs(docs_dir: Path) -> None:
    """Make the Data Docs HTML a pure function of the data.

    GX's renderer stamps the wall-clock time (load time, a logo cache-buster) and
    uuid4 element ids into every page and offers no switch for it; without this a
    rerun of the stage gives a new DVC hash for identical data. Ids are renumbered
    in order of appearance, so links inside a page keep working.
    """
    fixed_time = FIXED_RUN_TIME.strftime("%Y%m%dT%H%M%S.%fZ")
    for page in sorted(docs_dir.rglob("*.html")):
        text = _renumber_uuids(page.read_text(encoding="utf-8"))
        page.write_text(_GX_TIMESTAMP.sub(fixed_time, text), encoding="utf-8")


def _renumber_uuids(text: str) -> str:
    numbering: dict[str, str] = {}
    return _UUID.sub(lambda m: numbering.setdefault(m.group(), f"00000000-0000-4000-8000-{len(numbering):012d}"), text)


def without_run_identity(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (None if k in VOLATILE_KEYS else without_run_identity(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [without_run_identity(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """numpy scalars and containers -> JSON-ready Python values."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value
