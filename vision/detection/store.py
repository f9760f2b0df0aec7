"""Save and load detectors: safetensors weights next to `model.json`, which carries the network's shape, the
decoding settings and the preprocessing, so evaluation, export and serving rebuild exactly what was trained."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from vision.data.dataset import MEAN, STD
from vision.detection.decode import Decoding
from vision.detection.model import Detector, DetectorConfig

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "model.json"


def save_detector(model: Detector, decoding: Decoding, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    document = {"task": "detection", **model.config.to_json(), "mean": list(MEAN), "std": list(STD),
                "decoding": {"score_threshold": decoding.score_threshold, "nms_iou": decoding.nms_iou,
                             "max_detections": decoding.max_detections}}
    (folder / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def load_detector(folder: Path) -> tuple[Detector, Decoding]:
    raw = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    config = DetectorConfig.from_json(raw)
    model = Detector(config)
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    settings = raw["decoding"]
    decoding = Decoding(config.input_wh, config.strides, float(settings["score_threshold"]),
                        float(settings["nms_iou"]), int(settings["max_detections"]))
    return model.eval(), decoding
