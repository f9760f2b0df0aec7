"""train (multi-label): fit the spec's timm backbone as a tagger, one sigmoid per tag trained with binary
cross-entropy (vision.tasks.multilabel), through the same search and fit as a classifier (stages.train,
stages.training): only the targets (the tag table's multi-hot rows) and the figures (validation mAP and
macro-F1 over tags) are the task's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime import StageContext, run_stage
from stages.train import TrainInputs, model_config, with_native_size
from stages.training import train
from vision.data.dataset import load_tagged_splits
from vision.tasks.multilabel import TASK as MULTILABEL


@dataclass(frozen=True)
class TaggerInputs(TrainInputs):
    """A tagger's training inputs: a classifier's, with multi-hot targets and its own history plot."""

    history_plot = "map"
    entry_module = "stages.multilabel.train"


def load_inputs(ctx: StageContext) -> TaggerInputs:
    config, choice = model_config(ctx)
    ingest_dir, tags_csv, split_csv = ctx.input("images"), ctx.input("tags"), ctx.input("split")
    splits = load_tagged_splits(ingest_dir, tags_csv, split_csv, config.classes, config.input_size_px,
                                names=("train", "val"))
    training = with_native_size(ctx.spec("train"), ctx.input("manifest"))
    return TaggerInputs(splits.train, splits.val, config, training, ctx.spec("augment"), ctx.spec("seed"), MULTILABEL,
                        (ingest_dir, split_csv), tags_csv, choice=choice)


def main(ctx: StageContext) -> None:
    train(ctx, load_inputs(ctx))


if __name__ == "__main__":
    from core.contracts.multilabel.train import CONTRACT

    run_stage(CONTRACT, main)
