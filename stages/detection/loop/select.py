"""select (detection): the data loop's round for a detector; the stage is shared with classification
(stages.loop.select), which reads the task from the pipeline it runs in."""

from __future__ import annotations

from stages.loop.select import main
from stages.runtime import run_stage

if __name__ == "__main__":
    from core.contracts.detection.select import CONTRACT

    run_stage(CONTRACT, main)
