"""A zero-shot grounding detector as the queue's annotator, for projects without a model of their own yet:
OWLv2 (Minderer et al. 2023) through `transformers`, prompted with "a photo of a <class>" for every class.

Loaded only from a local folder (`save_pretrained` layout: config.json, weights, processor and tokenizer
files) with `local_files_only`, so nothing is ever downloaded; a missing or incomplete folder is a clear
error naming what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vision.data.labelstudio import Guess

PROMPT = "a photo of a {}"
REQUIRED = ("config.json", "preprocessor_config.json|processor_config.json")


class ZeroShotUnavailable(RuntimeError):
    """The checkpoint folder is missing or is not an OWLv2 checkpoint."""


@dataclass
class ZeroShotDetector:
    model: Any
    processor: Any
    classes: list[str]

    @classmethod
    def load(cls, folder: Path, classes: list[str]) -> ZeroShotDetector:
        if not folder.is_dir():
            raise ZeroShotUnavailable(f"zero-shot checkpoint folder {folder} does not exist: save an OWLv2 checkpoint "
                                      "there with save_pretrained (model and processor); nothing is downloaded")
        for names in REQUIRED:
            if not any((folder / name).is_file() for name in names.split("|")):
                raise ZeroShotUnavailable(f"{folder} has no {names.replace('|', ' or ')}: not a save_pretrained "
                                          "OWLv2 checkpoint")
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        try:
            model = Owlv2ForObjectDetection.from_pretrained(folder, local_files_only=True).eval()
            processor = Owlv2Processor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ZeroShotUnavailable(f"{folder} is not a loadable OWLv2 checkpoint ({exc})") from None
        return cls(model, processor, classes)

    @torch.inference_mode()
    def guesses(self, image_path: Path, threshold: float) -> list[Guess]:
        """The boxes OWLv2 finds for the class prompts, in the image's pixels, best first."""
        with Image.open(image_path) as opened:
            image = opened.convert("RGB")
        prompts = [[PROMPT.format(name) for name in self.classes]]
        inputs = self.processor(text=prompts, images=image, return_tensors="pt", padding=True)
        outputs = self.model(**inputs)
        side = max(image.size)  # OWLv2 pads to a square (right and bottom) before resizing
        found = self.processor.post_process_grounded_object_detection(outputs, threshold=threshold,
                                                                      target_sizes=[(side, side)])[0]
        width, height = image.size
        result = []
        for box, score, label in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist(),
                                     strict=True):
            x1, y1, x2, y2 = max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3])
            if x2 > x1 and y2 > y1:
                result.append(Guess(self.classes[int(label)], float(score), (x1, y1, x2, y2)))
        return sorted(result, key=lambda g: -g.score)
