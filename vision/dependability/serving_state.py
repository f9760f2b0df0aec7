"""Dependability's members of the served bundle, written once for every task: `serving.json` (the fitted
temperature, the OOD detector and the threshold serving abstains above) and each fitted OOD array as `.npy`.
The server reads them back through runtime.bundle and runtime.artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.fsutil import write_json
from runtime.bundle import OOD_STATE_DIR, SERVING_FILE, OodSettings, ServingSettings, ood_state_file


# Six parameters: the folder and the five values serving.json holds.
def write_serving_state(folder: Path, temperature: float, detector: str, threshold: float, tpr: float,
                        state: dict[str, Any]) -> None:
    """serving.json and the OOD arrays in `folder` (an array is saved as `.npy`: same array, same bytes)."""
    settings = ServingSettings(temperature, OodSettings(detector, threshold, tpr,
                                                         state={name: ood_state_file(name) for name in sorted(state)}))
    write_json(folder / SERVING_FILE, settings.to_dict())
    if state:
        (folder / OOD_STATE_DIR).mkdir()
        for name, array in sorted(state.items()):
            np.save(folder / ood_state_file(name), np.asarray(array))
