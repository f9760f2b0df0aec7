"""evaluate (multi-label): the trained tagger on the test split.

Each tag's decision threshold is the one with the best F1 on the validation split (never on test), and the
test figures are read at those thresholds: mAP over tags (threshold-free), macro and micro F1, the share of
images whose every tag is right, and per tag its AP, precision, recall, F1, threshold and support. The
precision-recall curve of every tag is a DVC plot; the test images with the most wrong tags go to a gallery.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_curve

from core.fsutil import write_csv, write_json
from stages.runtime import StageContext, run_stage
from vision.data.dataset import SplitData, load_tagged_splits
from vision.plots import file_caption, image_grid
from vision.tasks.multilabel import TASK as MULTILABEL
from vision.tasks.multilabel import choose_thresholds, sigmoid, tag_metrics
from vision.training.model import load_model, predict_images

GALLERY_SIZE = 12
GALLERY_COLUMNS = 4


def precision_recall_rows(targets: np.ndarray, probabilities: np.ndarray, classes: list[str]
                          ) -> list[dict[str, object]]:
    """Each tag's precision-recall curve as rows (tag, threshold, recall, precision), for `dvc plots`."""
    rows = []
    for i, tag in enumerate(classes):
        truth = targets[:, i] > 0.5
        if not truth.any():
            continue
        precision, recall, thresholds = precision_recall_curve(truth, probabilities[:, i])
        rows += [{"tag": tag, "threshold": round(float(t), 6), "recall": round(float(r), 6),
                  "precision": round(float(p), 6)} for p, r, t in zip(precision[:-1], recall[:-1], thresholds,
                                                                       strict=True)]
    return rows


def mistakes_gallery(test: SplitData, predicted: np.ndarray, classes: list[str], path: Path, title: str) -> int:
    """The test images with the most wrong tags (missed or extra), captioned with both tag sets."""
    truth = test.labels > 0.5
    wrong = (predicted != truth).sum(axis=1)
    order = [i for i in np.lexsort((np.arange(len(wrong)), -wrong)) if wrong[i] > 0][:GALLERY_SIZE]
    rows = [("", [test.images[i] for i in order[s:s + GALLERY_COLUMNS]],
             [f"{file_caption(test.paths[i])}\ntrue: {MULTILABEL.caption(truth[i], classes)}\n"
              f"got: {MULTILABEL.caption(predicted[i], classes)}"
              for i in order[s:s + GALLERY_COLUMNS]]) for s in range(0, len(order), GALLERY_COLUMNS)]
    image_grid(rows or [("", [np.full((8, 8, 3), 255, np.uint8)], ["no mistakes"])], path,
               f"{title}: {int((wrong > 0).sum())} test images with a wrong tag")
    return len(order)


def main(ctx: StageContext) -> None:
    model, config = load_model(ctx.input("model"))
    splits = load_tagged_splits(ctx.input("images"), ctx.input("tags"), ctx.input("split"), config.classes,
                                config.input_size_px, names=("val", "test"))
    val_p = sigmoid(predict_images(model, splits.val.images).numpy())
    test_p = sigmoid(predict_images(model, splits.test.images).numpy())
    thresholds = choose_thresholds(splits.val.labels, val_p)
    figures = tag_metrics(splits.test.labels, test_p, config.classes, thresholds)
    write_json(ctx.output("per_class"), figures.pop("per_class"))
    write_json(ctx.output("metrics"), figures)
    write_csv(ctx.output("precision_recall"), precision_recall_rows(splits.test.labels, test_p, config.classes),
              ("tag", "threshold", "recall", "precision"))
    mistakes_gallery(splits.test, test_p > thresholds[None, :], config.classes, ctx.output("mistakes"), ctx.project)
    chosen = ", ".join(f"{c} {t:.2f}" for c, t in zip(config.classes, thresholds, strict=True))
    print(f"evaluate: {ctx.project} test mAP {figures['map']:.4f}, macro-F1 {figures['macro_f1']:.4f}, micro-F1 "
          f"{figures['micro_f1']:.4f}, exact match {figures['exact_match']:.4f} on {figures['images']} images "
          f"(thresholds chosen on validation: {chosen})")


if __name__ == "__main__":
    from core.contracts.multilabel.evaluate import CONTRACT

    run_stage(CONTRACT, main)
