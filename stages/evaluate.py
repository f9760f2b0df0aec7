"""evaluate: the trained model on the test split -> metrics (DVC metrics) and a confusion plot."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from stages._cli import StageContext, run_stage, write_json
from stages._dataset import load_split, to_tensor
from stages._metrics import classification_metrics
from stages._model import load_model, predict_logits


def evaluate(model_dir: Path, ingest_dir: Path, split_csv: Path) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """Metrics on the test split and (actual, predicted) class-name pairs, one per test image."""
    model, config = load_model(model_dir)
    test = load_split(ingest_dir, split_csv, "test", config.classes, config.input_size_px)
    predicted = predict_logits(model, to_tensor(test.images)).argmax(1).numpy()
    metrics = classification_metrics(test.labels, predicted, config.classes)
    pairs = [(config.classes[a], config.classes[p]) for a, p in zip(test.labels, predicted, strict=True)]
    return metrics, pairs


def main(ctx: StageContext) -> None:
    metrics, pairs = evaluate(ctx.dep(2), ctx.dep(0), ctx.dep(1) / "split.csv")
    write_json(ctx.path(ctx.info.reports[0]), metrics.pop("per_class"))
    write_json(ctx.metric(), metrics)
    plot = ctx.plot()
    plot.parent.mkdir(parents=True, exist_ok=True)
    with plot.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("actual", "predicted"))
        writer.writerows(pairs)
    wrong = int(np.sum([a != p for a, p in pairs]))
    print(f"evaluate: {ctx.project} test accuracy {metrics['accuracy']:.4f} on {metrics['images']} images "
          f"({wrong} wrong), macro-F1 {metrics['macro_f1']:.4f}")


if __name__ == "__main__":
    run_stage("evaluate", main)
