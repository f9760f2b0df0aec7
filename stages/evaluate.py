"""evaluate: the trained model on the test split -> metrics (DVC metrics), confusions and a gallery of mistakes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.fsutil import write_csv, write_json
from stages.runtime import StageContext, run_stage
from vision.data.dataset import SplitData, load_split
from vision.plots import file_caption, image_grid
from vision.tasks import task as task_named
from vision.tasks.base import Task
from vision.tasks.classification import TASK as CLASSIFICATION
from vision.training.model import load_model, predict_images

GALLERY_SIZE = 24
GALLERY_COLUMNS = 4
TOP_CONFUSIONS = 10


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, object]
    actual: list[str]
    predicted: list[str]
    confidence: np.ndarray
    """Softmax probability of the predicted class, per test image."""
    test: SplitData


def evaluate(model_dir: Path, ingest_dir: Path, split_csv: Path, task: Task = CLASSIFICATION) -> Evaluation:
    """Metrics on the test split plus each image's actual and predicted class names."""
    model, config = load_model(model_dir)
    test = load_split(ingest_dir, split_csv, "test", config.classes, config.input_size_px)
    probabilities = torch.softmax(predict_images(model, test.images), dim=1).numpy()
    predicted = probabilities.argmax(1)
    metrics = task.metrics(test.labels, probabilities, config.classes)
    return Evaluation(metrics, [config.classes[a] for a in test.labels], [config.classes[p] for p in predicted],
                      probabilities.max(1), test)


def top_confusions(actual: list[str], predicted: list[str], limit: int = TOP_CONFUSIONS) -> list[dict[str, object]]:
    """The most frequent (actual, predicted) mistakes, most frequent first, ties by name."""
    counts = Counter((a, p) for a, p in zip(actual, predicted, strict=True) if a != p)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"actual": a, "predicted": p, "count": n} for (a, p), n in ranked[:limit]]


def mistakes_gallery(result: Evaluation, path: Path, title: str) -> int:
    """The most confident mistakes first, captioned `true -> predicted (confidence)`; returns how many shown."""
    wrong = [i for i, (a, p) in enumerate(zip(result.actual, result.predicted, strict=True)) if a != p]
    wrong.sort(key=lambda i: (-result.confidence[i], result.test.paths[i]))
    shown = wrong[:GALLERY_SIZE]
    rows = []
    for start in range(0, len(shown), GALLERY_COLUMNS):
        chunk = shown[start:start + GALLERY_COLUMNS]
        rows.append(("", [result.test.images[i] for i in chunk],
                     [f"{file_caption(result.test.paths[i])}\n{result.actual[i]} -> {result.predicted[i]} "
                      f"({result.confidence[i]:.2f})" for i in chunk]))
    image_grid(rows or [("", [np.full((8, 8, 3), 255, np.uint8)], ["no mistakes"])], path,
               f"{title}: {len(wrong)} misclassified test images" + (f", {len(shown)} most confident shown"
                                                                       if len(wrong) > len(shown) else ""))
    return len(shown)


def main(ctx: StageContext) -> None:
    result = evaluate(ctx.input("model"), ctx.input("images"), ctx.input("split"), task_named(ctx.spec("task")))
    metrics = dict(result.metrics)
    per_class_json, confusions_json, gallery_png = (ctx.output(name) for name in ("per_class", "top_confusions",
                                                                                    "misclassified"))
    write_json(per_class_json, metrics.pop("per_class"))
    write_json(confusions_json, top_confusions(result.actual, result.predicted))
    mistakes_gallery(result, gallery_png, ctx.project)
    write_json(ctx.output("metrics"), metrics)
    write_csv(ctx.output("confusion"), [{"actual": a, "predicted": p} for a, p in zip(result.actual, result.predicted,
                                                                         strict=True)])
    wrong = sum(a != p for a, p in zip(result.actual, result.predicted, strict=True))
    print(f"evaluate: {ctx.project} test accuracy {metrics['accuracy']:.4f} on {metrics['images']} images "
          f"({wrong} wrong), macro-F1 {metrics['macro_f1']:.4f}; mistakes: {gallery_png}")


if __name__ == "__main__":
    from core.contracts.classification.evaluate import CONTRACT

    run_stage(CONTRACT, main)
