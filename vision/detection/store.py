"""Save and load detectors: safetensors weights next to `model.json`, which carries the network's shape, the
decoding settings and the preprocessing, so evaluation, export and serving rebuild exactly what was trained.
A pruned detector's file also carries torch-pruning's record of the channels it removed: loading builds the
unpruned network, replays that record, then loads the weights (no pickled modules, same bytes every run)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from runtime.detections import Decoding
from vision.data.dataset import MEAN, STD
from vision.detection.model import Detector, DetectorConfig

PruningStep = tuple[str, bool, list[int]]
"""(module name, output channels or not, removed channel indices): one entry of torch-pruning's history."""


def save_detector(model: Detector, decoding: Decoding, folder: Path, history: list[PruningStep] | None = None,
                  name: str = "model") -> None:
    """`<name>.safetensors` + `<name>.json` in `folder`; `history` when the detector was pruned."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / f"{name}.safetensors"))
    document = {"task": "detection", **model.config.to_json(), "mean": list(MEAN), "std": list(STD),
                "decoding": decoding.to_dict()}
    if history:
        document["pruning_history"] = [[step, out, list(indices)] for step, out, indices in history]
    (folder / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def load_detector(folder: Path, name: str = "model") -> tuple[Detector, Decoding]:
    raw = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    config = DetectorConfig.from_json(raw)
    model = Detector(config).eval()
    if raw.get("pruning_history"):
        import torch_pruning as tp

        width, height = config.input_wh
        graph = tp.DependencyGraph().build_dependency(model, torch.zeros(1, 3, height, width), verbose=False)
        graph.load_pruning_history([(step, bool(out), list(indices)) for step, out, indices in raw["pruning_history"]])
    model.load_state_dict(load_file(str(folder / f"{name}.safetensors")))
    return model.eval(), Decoding.from_dict(raw["decoding"], config.input_wh, config.strides)
