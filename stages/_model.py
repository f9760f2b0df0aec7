"""Build, save and load classifiers: a timm backbone plus the config needed to use it anywhere.

Weights are stored as safetensors (byte-for-byte reproducible, no pickle) next
to `model.json`, which carries everything serving needs to preprocess input.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file, save_file

from stages._dataset import MEAN, STD

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "model.json"


@dataclass(frozen=True)
class ModelConfig:
    backbone: str
    classes: list[str]
    input_size_px: int
    drop_rate: float = 0.0
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD


def build_model(config: ModelConfig) -> torch.nn.Module:
    return timm.create_model(config.backbone, pretrained=False, num_classes=len(config.classes),
                             in_chans=3, drop_rate=config.drop_rate)


def save_model(model: torch.nn.Module, config: ModelConfig, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")


def load_model(folder: Path) -> tuple[torch.nn.Module, ModelConfig]:
    raw = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    config = ModelConfig(**{**raw, "mean": tuple(raw["mean"]), "std": tuple(raw["std"])})
    model = build_model(config)
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return model.eval(), config


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    chunks = [model(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros((0, 0))
