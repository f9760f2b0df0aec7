"""The cascade scored end to end on its detector's test images: truth is each box's annotation category, a found
box counts under the classifier's class with the product of both scores, a box the classifier abstained on cannot
count, and a baseline that trained on a test image is refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from core.fsutil import write_csv
from runtime.artifact import DetectionPrediction, Prediction
from runtime.detections import Detections
from vision.cascade.evaluation import (
    SplitMismatch,
    answers_table,
    baseline_agrees,
    coarse_detections,
    figures,
    fine_detections,
    held_out_images,
    renamed,
    run_cascade,
    run_detector,
)

BOXES = {"images/a.png": [(4, 4, 28, 36, "red"), (44, 4, 76, 36, "blue")], "images/b.png": [(10, 6, 40, 34, "red")],
         "images/c.png": [(4, 4, 28, 36, "blue")]}
"""Each image's boxes (xyxy, colour painted inside): a and b are test images, c trains."""


def _detector_outputs(root: Path) -> tuple[Path, Path]:
    ingest = root / "ingest"
    colours = {"red": (220, 20, 20), "blue": (20, 20, 220)}
    for path, boxes in BOXES.items():
        pixels = np.full((40, 80, 3), 128, np.uint8)
        for x1, y1, x2, y2, colour in boxes:
            pixels[y1:y2, x1:x2] = colours[colour]
        (ingest / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(ingest / path)
    write_csv(ingest / "manifest.csv", [{"path": p, "label": "thing", "width": 80, "height": 40} for p in BOXES])
    write_csv(ingest / "boxes.csv", [{"path": p, "label": "thing", "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                                      "category": colour} for p, boxes in BOXES.items()
                                     for x1, y1, x2, y2, colour in boxes])
    split = root / "split.csv"
    write_csv(split, [{"path": p, "split": "train" if p.endswith("c.png") else "test"} for p in BOXES])
    return ingest, split


class Detector:
    """Stands for the released detector: finds every painted rectangle of an image."""

    classes = ("thing",)
    tiled = False

    def decode(self, data: bytes) -> Image.Image:
        return Image.open(io.BytesIO(data)).convert("RGB")

    def fit(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image, np.uint8)

    def normalise(self, images: np.ndarray) -> np.ndarray:
        return images

    def detect(self, tensor, sizes, request=None, images=None) -> DetectionPrediction:
        found = []
        for pixels in tensor:
            regions = ndimage.find_objects(ndimage.label(np.any(pixels != 128, axis=2))[0])
            boxes = [(r[1].start, r[0].start, r[1].stop, r[0].stop) for r in regions]
            found.append(Detections(np.asarray(boxes, np.float32).reshape(-1, 4),
                                    np.full(len(boxes), 0.9, np.float32), np.zeros(len(boxes), np.int64)))
        return DetectionPrediction(found, np.zeros(len(tensor), np.float32), np.zeros(len(tensor), bool))


class Classifier:
    """Stands for the released classifier: the crop's dominant colour, abstaining on none."""

    classes = ("red", "blue")

    def fit(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.resize((8, 8)), np.uint8)

    def normalise(self, images: np.ndarray) -> np.ndarray:
        return images.astype(np.float32)

    def predict(self, tensor: np.ndarray) -> Prediction:
        mean = tensor.mean(axis=(1, 2))
        red = mean[:, 0] > mean[:, 2]
        labels = ["red" if r else "blue" for r in red]
        probabilities = np.stack([np.where(red, 0.8, 0.2), np.where(red, 0.2, 0.8)], axis=1).astype(np.float32)
        return Prediction(labels, labels, probabilities, np.zeros(len(tensor)), np.zeros(len(tensor), bool))


def test_a_right_pair_scores_full_marks_per_fine_class_on_the_test_images_only(tmp_path: Path) -> None:
    ingest, split = _detector_outputs(tmp_path)
    images = held_out_images(ingest, split, ["red", "blue"], ["thing"])
    assert [image.path for image in images] == ["images/a.png", "images/b.png"]
    answers = run_cascade(Detector(), Classifier(), ingest, images, padding=0.0)
    assert [[box.fine for box in answer.boxes] for answer in answers] == [["red", "blue"], ["red"]]
    end_to_end = figures(fine_detections(answers, ["red", "blue"]), images, ["red", "blue"])
    assert end_to_end["map"] == pytest.approx(1.0)
    assert end_to_end["per_class_ap"] == {"red": pytest.approx(1.0), "blue": pytest.approx(1.0)}
    coarse = figures(coarse_detections(answers, ["thing"]), images, ["thing"], truth="coarse")
    assert coarse["map"] == pytest.approx(1.0)
    table = answers_table(images, answers)
    assert table[0]["boxes"][0] == {"box": [4.0, 4.0, 28.0, 36.0], "coarse": "thing", "coarse_score": 0.9,
                                    "fine": "red", "fine_score": 0.8}


def test_a_wrong_classifier_loses_what_the_detector_found(tmp_path: Path) -> None:
    ingest, split = _detector_outputs(tmp_path)
    images = held_out_images(ingest, split, ["red", "blue"], ["thing"])

    class Swapped(Classifier):
        def predict(self, tensor: np.ndarray) -> Prediction:
            named = super().predict(tensor)
            swapped = ["blue" if label == "red" else "red" for label in named.labels]
            return Prediction(swapped, swapped, named.probabilities[:, ::-1], named.ood_scores, named.abstained)

    answers = run_cascade(Detector(), Swapped(), ingest, images, padding=0.0)
    assert figures(fine_detections(answers, ["red", "blue"]), images, ["red", "blue"])["map"] == 0.0
    assert figures(coarse_detections(answers, ["thing"]), images, ["thing"], truth="coarse")["map"] == \
        pytest.approx(1.0), "the detector's own figure shows where the pair lost"


def test_a_box_the_classifier_abstained_on_cannot_be_found(tmp_path: Path) -> None:
    ingest, split = _detector_outputs(tmp_path)
    images = held_out_images(ingest, split, ["red", "blue"], ["thing"])

    class Unsure(Classifier):
        def predict(self, tensor: np.ndarray) -> Prediction:
            named = super().predict(tensor)
            return Prediction([None] * len(tensor), named.top_class, named.probabilities, named.ood_scores,
                              np.ones(len(tensor), bool))

    answers = run_cascade(Detector(), Unsure(), ingest, images, padding=0.0)
    assert [len(answer.boxes) for answer in answers] == [2, 1], "the boxes stay, with their coarse class"
    assert [len(found) for found in fine_detections(answers, ["red", "blue"])] == [0, 0]


def test_the_baseline_is_scored_by_class_name_and_must_not_have_trained_on_a_test_image(tmp_path: Path) -> None:
    ingest, split = _detector_outputs(tmp_path)
    images = held_out_images(ingest, split, ["red", "blue"], ["thing"])
    found = run_detector(Detector(), ingest, images)
    as_blue = renamed(found, ["blue"], ["red", "blue"])
    assert [f.labels.tolist() for f in as_blue] == [[1, 1], [1]]
    baseline_agrees(images, split)
    write_csv(tmp_path / "other.csv", [{"path": "images/a.png", "split": "test"},
                                       {"path": "images/b.png", "split": "train"}])
    with pytest.raises(SplitMismatch, match="1 of the cascade's 2 test images are not test images of the baseline"):
        baseline_agrees(images, tmp_path / "other.csv")


def test_a_test_box_of_a_category_the_cascade_does_not_name_is_an_error(tmp_path: Path) -> None:
    ingest, split = _detector_outputs(tmp_path)
    with pytest.raises(ValueError, match=r"categories the cascade's classes do not name: \['blue'\]"):
        held_out_images(ingest, split, ["red"], ["thing"])
