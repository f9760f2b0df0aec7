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

from vision.data.dataset import MEAN, STD, SplitData, to_tensor
from vision.data.streams import Images, batch_for, batches
from vision.tasks.base import Task
from vision.training.pretrained import load_pretrained

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "model.json"


@dataclass(frozen=True)
class ModelConfig:
    backbone: str
    classes: list[str]
    input_size_px: int
    drop_rate: float = 0.0
    pretrained: str | None = None
    """Offline ImageNet weights the training started from (see stages/_pretrained.py); informational
    once trained, since the saved weights replace them."""
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD


def build_model(config: ModelConfig, *, with_pretrained_weights: bool = True) -> torch.nn.Module:
    """The architecture for `config`; starts from the offline ImageNet weights when it names them."""
    if config.pretrained and with_pretrained_weights:
        model = load_pretrained(config.pretrained, num_classes=len(config.classes))
        model.drop_rate = config.drop_rate
        return model.train()
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
    model = build_model(config, with_pretrained_weights=False)  # the saved weights replace them anyway
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return model.eval(), config


def accuracy(model: torch.nn.Module, data: SplitData) -> float:
    """Top-1 accuracy of `model` on a loaded split."""
    predicted = predict_images(model, data.images).argmax(1).numpy()
    return float((predicted == data.labels).mean())


def task_score(model: torch.nn.Module, data: SplitData, task: Task) -> float:
    """The task's score (Task.score: accuracy, mAP over tags) of `model` on a loaded split."""
    return task.score(data.labels, predict_images(model, data.images).numpy())


@torch.inference_mode()
def predict_images(model: torch.nn.Module, images: Images, batch_size: int = 256) -> torch.Tensor:
    """Logits for uint8 NHWC images, read and normalised a batch at a time (fewer per batch as they grow)."""
    model.eval()
    chunks = [model(to_tensor(chunk)) for chunk in batches(images, batch_for(int(images.shape[1]), most=batch_size))]
    return torch.cat(chunks) if chunks else torch.zeros((0, 0))


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    chunks = [model(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros((0, 0))
