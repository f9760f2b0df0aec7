"""export (multi-label): a classifier's variants and choice (stages.export, stages.exporting) scored by mAP over
tags, and the deployable file's per-tag thresholds, chosen on the validation split with that very file's
outputs (int8 moves probabilities a little), shipped in preprocess.json for the server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.fsutil import read_json
from stages.export import ClassifierExport, classifier_export
from stages.exporting import export
from stages.runtime import StageContext, run_stage
from vision.compression.onnx import predict, session
from vision.data.dataset import load_tagged_splits
from vision.tasks.multilabel import TASK as MULTILABEL
from vision.tasks.multilabel import choose_thresholds, sigmoid


@dataclass(frozen=True)
class TaggerExport(ClassifierExport):
    """A tagger's variants: a classifier's measurement with the tagger's score, and its thresholds in the bundle."""

    def preprocessing(self, model_file: Path) -> dict[str, Any]:
        probabilities = sigmoid(predict(session(model_file), self.val.images))
        thresholds = choose_thresholds(self.val.labels, probabilities)
        return {**super().preprocessing(model_file), "task": MULTILABEL.name,
                "thresholds": [round(float(t), 6) for t in thresholds]}


def main(ctx: StageContext) -> None:
    config = read_json(ctx.input("variants"))["model"]
    splits = load_tagged_splits(ctx.input("images"), ctx.input("tags"), ctx.input("split"), config["classes"],
                                int(config["input_size_px"]))
    export(ctx, classifier_export(ctx, splits, MULTILABEL, TaggerExport))


if __name__ == "__main__":
    from core.contracts.multilabel.export import CONTRACT

    run_stage(CONTRACT, main)
