"""Torch forms of the compression candidates, saved beside their ONNX files and loaded back.

The deployable file is ONNX, but gradient-based explanations (Grad-CAM) and
ViM's classifier weights need the torch model it came from. Each candidate is
saved as safetensors plus a small JSON (its model config, for pruned
candidates torch-pruning's history, and whether BatchNorm was folded into the
convolutions, as in the quantization-aware candidate), so it can be rebuilt
without pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vision.compression.pruning import PruningStep, rebuild_pruned
from vision.compression.qat import fold_batchnorm
from vision.training.model import ModelConfig, build_model


# Six parameters: the model and the three facts that rebuild its architecture, and where it goes.
def save_candidate(model: torch.nn.Module, config: ModelConfig, history: list[PruningStep], folder: Path,
                   name: str, batchnorm_folded: bool = False) -> None:
    state = {key: tensor.detach().contiguous() for key, tensor in model.state_dict().items()}
    save_file(state, str(folder / f"{name}.safetensors"))
    described = {"model": asdict(config), "pruning_history": [list(step) for step in history]}
    if batchnorm_folded:
        described["batchnorm_folded"] = True
    (folder / f"{name}.json").write_text(json.dumps(described, indent=1) + "\n", encoding="utf-8")


def load_candidate(folder: Path, name: str) -> tuple[torch.nn.Module, ModelConfig]:
    """The candidate `name` as an eval-mode torch model, rebuilt from its config and pruning history."""
    described = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    raw = described["model"]
    config = ModelConfig(**{**raw, "mean": tuple(raw["mean"]), "std": tuple(raw["std"])})
    model = build_model(replace(config, pretrained=None), with_pretrained_weights=False)
    history = [(str(n), bool(out), list(idxs)) for n, out, idxs in described["pruning_history"]]
    if history:
        model = rebuild_pruned(model, history, config.input_size_px)
    if described.get("batchnorm_folded"):
        fold_batchnorm(model, config.input_size_px)
    model.load_state_dict(load_file(str(folder / f"{name}.safetensors")))
    return model.eval(), config
