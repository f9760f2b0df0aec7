"""The cascade's one function (runtime.cascade): each detected box cropped with the classifier's padding and
named by it, the detector's abstention leaving an image without boxes, the classifier's leaving a box without
its fine class."""

from __future__ import annotations

import numpy as np
from PIL import Image

from runtime.artifact import DetectionPrediction, Prediction
from runtime.cascade import cascade
from runtime.detections import Detections


class Detector:
    """Stands for a detector Artifact: two boxes on the first image, an abstention on the second."""

    classes = ("vehicle",)
    tiled = False

    def fit(self, image: Image.Image) -> np.ndarray:
        return np.asarray(image.resize((32, 32)), np.uint8)

    def normalise(self, images: np.ndarray) -> np.ndarray:
        return images.astype(np.float32)

    def detect(self, tensor, sizes, request=None, images=None) -> DetectionPrediction:
        assert sizes == [(80, 40), (80, 40)], "boxes come back in each image's own pixels"
        boxes = np.asarray([[4, 4, 24, 36], [50, 10, 70, 30]], np.float32)
        empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        return DetectionPrediction([Detections(boxes, np.asarray([0.9, 0.6], np.float32), np.zeros(2, np.int64)),
                                    empty], np.zeros(2, np.float32), np.asarray([False, True]))


class Classifier:
    """Stands for a classifier Artifact: `red` or `blue` by the crop's mean colour, abstaining on a grey crop."""

    def fit(self, image: Image.Image) -> np.ndarray:
        self.sizes = [*getattr(self, "sizes", []), image.size]
        return np.asarray(image.resize((8, 8)), np.uint8)

    def normalise(self, images: np.ndarray) -> np.ndarray:
        return images.astype(np.float32)

    def predict(self, tensor: np.ndarray) -> Prediction:
        mean = tensor.mean(axis=(1, 2))
        red = mean[:, 0] > mean[:, 2] + 20
        blue = mean[:, 2] > mean[:, 0] + 20
        probabilities = np.stack([np.where(red, 0.8, 0.3), np.where(red, 0.2, 0.7)], axis=1).astype(np.float32)
        labels = ["red" if r else "blue" if b else None for r, b in zip(red, blue, strict=True)]
        return Prediction(labels, ["red" if r else "blue" for r in red], probabilities, np.zeros(len(tensor)),
                          np.asarray([label is None for label in labels]))


def test_boxes_get_their_fine_class_from_the_padded_crop_and_abstentions_are_kept_apart() -> None:
    pixels = np.full((40, 80, 3), 128, np.uint8)
    pixels[4:36, 4:24] = (220, 20, 20)
    image = Image.fromarray(pixels)
    classifier = Classifier()
    first, second = cascade(Detector(), classifier, [image, image], padding=0.25)
    assert classifier.sizes == [(29, 40), (30, 30)], "each box grown by a quarter of its size, clipped"
    assert [(b.coarse, b.fine) for b in first.boxes] == [("vehicle", "red"), ("vehicle", None)]
    assert first.boxes[0].score == np.float32(0.9) * np.float32(0.8)
    assert not first.abstained
    assert second.abstained
    assert second.boxes == ()
