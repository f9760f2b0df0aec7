"""compress (multi-label): a classifier's candidates (stages.compress: pruning rounds, distillation, sparse
training, quantization-aware fine-tuning, a student), fine-tuned with the tagger's loss and scored by validation
mAP over tags."""

from __future__ import annotations

from stages import compressing
from stages.compress import ClassifierCompress
from stages.runtime import StageContext, run_stage
from vision.data.dataset import load_tagged_splits
from vision.tasks.multilabel import TASK as MULTILABEL
from vision.training.model import load_model


def main(ctx: StageContext) -> None:
    trained, config = load_model(ctx.input("model"))
    splits = load_tagged_splits(ctx.input("images"), ctx.input("tags"), ctx.input("split"), config.classes,
                                config.input_size_px)
    compressing.compress(ctx, ClassifierCompress(trained, config, splits, ctx, MULTILABEL))


if __name__ == "__main__":
    from core.contracts.multilabel.compress import CONTRACT

    run_stage(CONTRACT, main)
