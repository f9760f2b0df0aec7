"""ensemble (detection): the data loop's deep ensemble of detectors, trained as the train stage trained the
project's detector (its searched settings included), each with its own seed; the trained detector is member 0.
"""

from __future__ import annotations

import time
from dataclasses import replace

from core.fsutil import atomic_directory, read_json, write_json
from core.spec.loop import Ensemble
from stages.detection.train import load_inputs, with_params
from stages.runtime import StageContext, run_stage
from vision.detection.store import save_detector
from vision.loop.members import member_seeds, searched


def main(ctx: StageContext) -> None:
    ensemble: Ensemble = ctx.spec("active_learning.ensemble")
    inputs = load_inputs(ctx)
    best = searched(read_json(ctx.input("train_metrics")))
    training, config, pretrained = with_params(inputs.training, inputs.config, inputs.pretrained, best)
    training = training.model_copy(update={"hpo": None, **({"epochs": ensemble.epochs} if ensemble.epochs else {})})
    figures = []
    with atomic_directory(ctx.output("members")) as out:
        for seed in member_seeds(inputs.seed, ensemble.members):
            started = time.perf_counter()
            result = replace(inputs, seed=seed).fit(config, pretrained, training,
                                                    label=f"ensemble: member seed {seed}")
            save_detector(result.model, inputs.decoding(config), out / f"member-{seed}")
            figures.append({"seed": seed, "val_map": result.kept["val_map"],
                            "seconds": round(time.perf_counter() - started, 1)})
            print(f"ensemble: member seed {seed}: {result.summary()}")
    write_json(ctx.output("summary"), {"members": ensemble.members, "trained": figures})


if __name__ == "__main__":
    from core.contracts.detection.ensemble import CONTRACT

    run_stage(CONTRACT, main)
