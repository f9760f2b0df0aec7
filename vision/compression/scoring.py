"""How a task's compressed models are scored: a small description the task gives the shared pruning rounds and
the export choice (vision.compression.pruning, vision.compression.variants). A module of its own, imported by
the tasks' modules, so that training does not depend on the export engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scoring:
    """How a task scores its variants: the validation figure compress.budget.max_accuracy_drop is read on, the
    task's figures in a variant's row, and how they are named in messages and tables."""

    field: str
    """The row's validation figure the budget and the choice use (`val_accuracy`, `val_map`)."""
    label: str
    """Its name in messages (`val accuracy`, `val mAP50-95`)."""
    axis_label: str
    """Its name on the Pareto plot's axis."""
    columns: tuple[str, ...]
    """The task's figures in a row, in order; `field` among them."""
    headers: tuple[str, ...]
    """Their short headers in the printed table."""
    latency_note: str = ""
    """What a latency includes beyond the network, said in the choice's reason (` with decoding and NMS`)."""
    per_megapixel: bool = False
    """Whether rows report ms_per_megapixel (a detector's cost grows with the image's area)."""

    @property
    def test_columns(self) -> tuple[str, ...]:
        """The task's test-split figures among its columns (`test_accuracy`; `test_map`, `test_map50`)."""
        return tuple(name for name in self.columns if name.startswith("test_"))

    def row_fields(self) -> tuple[str, ...]:
        return ("variant", "candidate", "precision", "runtime", "deployable", "params", "macs", "size_bytes",
                *self.columns, "latency_ms_1_thread", "latency_ms_2_threads", "fp32_layers",
                *(("ms_per_megapixel",) if self.per_megapixel else ()))
