"""ensemble (classification): the data loop's deep ensemble. Members train exactly as the train stage trained
the project's model (its searched settings included), each with its own seed; the trained model is member 0
and is not trained again. Each member is kept in torch form (select's scoring) and as an fp32 ONNX file (the
`ensemble` OOD detector: dependability and the server run it). A stage of its own so DVC keeps the members
while the pool changes; on a cluster each member is an independent job, like the search's workers.
"""

from __future__ import annotations

import time

from core.fsutil import atomic_directory, read_json, write_json
from core.spec.loop import Ensemble
from stages.runtime import StageContext, run_stage
from stages.train import load_inputs, train_model, with_params
from stages.training import budgeted
from vision.compression.onnx import export_onnx
from vision.loop.members import member_seeds, searched
from vision.training.model import save_model


def main(ctx: StageContext) -> None:
    ensemble: Ensemble = ctx.spec("active_learning.ensemble")
    inputs = load_inputs(ctx)
    inputs, _ = budgeted(inputs)  # the model's planned epochs and frozen levels
    training, config = with_params(inputs.training, inputs.config, searched(read_json(ctx.input("train_metrics"))))
    training = training.model_copy(update={"hpo": None, **({"epochs": ensemble.epochs} if ensemble.epochs else {})})
    figures = []
    with atomic_directory(ctx.output("members")) as out:
        for seed in member_seeds(inputs.seed, ensemble.members):
            started = time.perf_counter()
            train, val = inputs.splits_at(config.input_size_px)
            result = train_model(train, val, config, training, seed, inputs.augment, task=inputs.task,
                                 label=f"ensemble: member seed {seed}")
            save_model(result.model, config, out / f"member-{seed}")
            export_onnx(result.model, config.input_size_px, out / f"member-{seed}" / "model.onnx")
            figures.append({"seed": seed, "val_accuracy": result.val_accuracy,
                            "seconds": round(time.perf_counter() - started, 1)})
            print(f"ensemble: member seed {seed}: {result.summary()}")
    write_json(ctx.output("summary"), {"members": ensemble.members, "trained": figures})


if __name__ == "__main__":
    from core.contracts.loop.ensemble import CONTRACT

    run_stage(CONTRACT, main)
