"""The `augment`, `model` and `train` sections: what is trained, on which views of the data, how."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from compiler.spec._base import Fraction, Interval, NonNegativeInt, PositiveFloat, PositiveInt, SpecModel

PretrainedWeights = Literal["efficientnet_lite0_imagenet", "efficientnet_lite1_imagenet", "efficientnet_lite2_imagenet"]


class AugmentSection(SpecModel):
    """Training-time augmentations: each value is the probability of applying it to an image."""

    severity: Annotated[int, Interval(1, 5)] = 2
    """Strength of every corruption-style augmentation, 1 (mild) to 5 (harsh)."""
    motion_blur: Fraction = 0.0
    low_light: Fraction = 0.0
    """Night: gamma, sensor noise and lower brightness."""
    pixelate: Fraction = 0.0
    fog: Fraction = 0.0
    rain: Fraction = 0.0
    snow: Fraction = 0.0
    occlusion: Fraction = 0.0
    """Coarse dropout of rectangular patches."""
    horizontal_flip: Fraction = 0.0
    """Leave at 0 where mirrored images change meaning (digits, text, traffic signs)."""
    random_crop: Fraction = 0.0
    color_jitter: Fraction = 0.0


class ModelSection(SpecModel):
    """The network: any timm backbone, optionally starting from offline ImageNet weights."""

    backbone: str = "resnet10t"
    """A timm model name (see `timm.list_models()`)."""
    pretrained: PretrainedWeights | None = None
    """Offline ImageNet weights; they need the matching `tf_efficientnet_lite*` backbone."""
    input_size_px: Annotated[int, Interval(8, 1024)] = 32
    """Images are resized to this square size for training and serving."""
    drop_rate: Annotated[float, Interval(0.0, 1.0, hi_open=True)] = 0.0


class Optimizer(SpecModel):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: PositiveFloat = 1.0e-3
    weight_decay: Annotated[float, Interval(0.0)] = 1.0e-4
    momentum: Annotated[float, Interval(0.0, 1.0, hi_open=True)] = 0.9
    """Used by sgd only."""


class Scheduler(SpecModel):
    name: Literal["cosine", "step", "none"] = "cosine"
    warmup_epochs: NonNegativeInt = 0


class SearchDimension(SpecModel):
    """One hyperparameter's search range: `low`/`high` (optionally `log`) or a list of `choices`."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[float] | None = None


Tunable = Literal["lr", "weight_decay", "batch_size", "label_smoothing", "drop_rate"]


class Hpo(SpecModel):
    """Hyperparameter search with optuna; the best trial's values train the final model."""

    trials: PositiveInt = 6
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    epochs_per_trial: PositiveInt | None = None
    """Epochs each trial trains; null uses `train.epochs`."""
    space: Annotated[dict[Tunable, SearchDimension], Field(min_length=1)] = {
        "lr": SearchDimension(low=1.0e-4, high=1.0e-2, log=True)
    }


class TrainSection(SpecModel):
    """How the model is trained (always seeded and deterministic on CPU)."""

    epochs: PositiveInt = 15
    batch_size: PositiveInt = 64
    optimizer: Optimizer = Optimizer()
    scheduler: Scheduler = Scheduler()
    label_smoothing: Annotated[float, Interval(0.0, 1.0, hi_open=True)] = 0.0
    early_stopping_patience: NonNegativeInt = 0
    """Stop after this many epochs without a better validation accuracy; 0 never stops early."""
    hpo: Hpo | None = None
    """Hyperparameter search; null trains once with the values above."""
