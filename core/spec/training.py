"""The `augment`, `model` and `train` sections: what is trained, on which views of the data, how."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from core.spec._base import Fraction, Interval, NonNegativeInt, PositiveFloat, PositiveInt, SpecModel

PretrainedWeights = Literal["efficientnet_lite0_imagenet", "efficientnet_lite1_imagenet", "efficientnet_lite2_imagenet"]


class AugmentSection(SpecModel):
    """Training-time augmentations: each value is the probability of applying it to an image. `augment: auto` (what
    a spec without this section gets) trains on the corruption families the gate tests the model against
    (`dependability.robustness.corruptions`), at the harshest severity it tests, each family with the probability
    that leaves half the training images clean; `params.yaml` shows the values, to pin or change."""

    severity: Annotated[int, Interval(1, 5)] = 2
    """Strength of every corruption-style augmentation, 1 (mild) to 5 (harsh)."""
    motion_blur: Fraction = 0.0
    """Camera or subject motion blur."""
    low_light: Fraction = 0.0
    """Night: gamma, sensor noise and lower brightness."""
    pixelate: Fraction = 0.0
    """Low-resolution sensors and heavy compression."""
    fog: Fraction = 0.0
    """Fog and haze."""
    rain: Fraction = 0.0
    """Rain streaks."""
    snow: Fraction = 0.0
    """Snowflakes and snow cover."""
    occlusion: Fraction = 0.0
    """Coarse dropout of rectangular patches."""
    gaussian_noise: Fraction = 0.0
    """Sensor noise (ImageNet-C's gaussian_noise)."""
    frost: Fraction = 0.0
    """Ice on the lens (ImageNet-C's frost textures)."""
    elastic: Fraction = 0.0
    """Local rubber-sheet warping."""
    perspective: Fraction = 0.0
    """A camera that is not square-on to the scene."""
    rotation: Fraction = 0.0
    """In-plane rotation (8 degrees per severity step)."""
    horizontal_flip: Fraction = 0.0
    """Leave at 0 where mirrored images change meaning (digits, text, traffic signs)."""
    random_crop: Fraction = 0.0
    """Random resized crops."""
    color_jitter: Fraction = 0.0
    """Brightness, contrast and saturation jitter."""


def auto_augment(corruptions: list[str], severities: list[int]) -> dict[str, float | int]:
    """`augment: auto`: every family the gate tests, at the harshest tested severity, each with probability
    1 - 0.5 ** (1 / families), so that half the training images meet no corruption at all."""
    families = sorted(set(corruptions))
    if not families:
        return {}
    share = round(1 - 0.5 ** (1 / len(families)), 3)
    return {"severity": max(severities, default=2), **dict.fromkeys(families, share)}


class ModelSection(SpecModel):
    """The network: any timm backbone, optionally starting from offline ImageNet weights. Each of the first three
    keys may be `auto` (their default; `model: auto` sets all three): the train stage then chooses from what
    ingest recorded of the data and from the target hardware (core.model_choice), writes what it chose and why
    into reports/<project>/train/metrics.json, and `autodl doctor` shows the same choice before training."""

    backbone: str = "auto"
    """A timm model name (see `timm.list_models()`); `auto`: EfficientNet-Lite0 with its offline ImageNet weights
    (the cheapest backbone to fine-tune on CPU that ships weights here)."""
    pretrained: PretrainedWeights | Literal["auto"] | None = "auto"
    """Offline ImageNet weights; they need the matching `tf_efficientnet_lite*` backbone. `auto`: the backbone's
    own weights when some ship here, else none (trained from scratch)."""
    input_size_px: Annotated[int, Interval(8, 1024)] | Literal["auto"] = "auto"
    """Images are resized to this square size for training and serving. `auto`: the data's native size (the median
    shorter side, a multiple of 32, at least 64 for pretrained weights and at most 320), lowered until the
    serving latency estimate fits `compress.budget.max_latency_ms` when that is set."""
    drop_rate: Annotated[float, Interval(0.0, 1.0, hi_open=True)] = 0.0
    """Dropout before the classifier head."""


def weights_backbone(weights: str) -> str:
    """The timm backbone offline ImageNet weights were made for (efficientnet_lite0_imagenet ->
    tf_efficientnet_lite0)."""
    return "tf_" + weights.removesuffix("_imagenet")


def offline_weights(backbone: str) -> str | None:
    """The offline ImageNet weights made for `backbone`, if any ship here."""
    return next((w for w in get_args(PretrainedWeights) if weights_backbone(w) == backbone), None)


class Optimizer(SpecModel):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    """Optimizer algorithm."""
    lr: PositiveFloat = 1.0e-3
    """Learning rate at the end of warm-up."""
    weight_decay: Annotated[float, Interval(0.0)] = 1.0e-4
    """Decoupled weight decay (adamw) or L2 penalty (adam, sgd)."""
    momentum: Annotated[float, Interval(0.0, 1.0, hi_open=True)] = 0.9
    """Used by sgd only."""


class Scheduler(SpecModel):
    name: Literal["cosine", "step", "none"] = "cosine"
    """Learning-rate schedule over epochs: cosine to zero, step (x0.1 at 50% and 75%) or constant."""
    warmup_epochs: NonNegativeInt = 0
    """Epochs of linear warm-up before the schedule starts."""


class SearchDimension(SpecModel):
    """One hyperparameter's search range: `low`/`high` (optionally `log`) or a list of `choices`."""

    low: float | None = None
    """Lower end of a numeric range."""
    high: float | None = None
    """Upper end of a numeric range."""
    log: bool = False
    """Sample the range on a log scale (learning rates, weight decay)."""
    choices: list[int | float | str] | None = None
    """Explicit values to try instead of a range (the only form `backbone`, `input_size_px`, `freeze` and
    `balance` take)."""


Tunable = Literal["lr", "weight_decay", "batch_size", "label_smoothing", "drop_rate", "backbone", "input_size_px",
                  "freeze", "balance"]
"""What the search can vary: optimizer and regularisation values, and the architecture and transfer choices
(`backbone`: timm names, those with offline ImageNet weights start from them; `input_size_px`: sizes, the data's
native one always added; `freeze`: levels kept frozen or `all`; `balance`: none, sampler or loss)."""


class Hpo(SpecModel):
    """Hyperparameter search with optuna; the best trial's values train the final model."""

    trials: PositiveInt = 6
    """Number of optuna trials."""
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    """How optuna proposes the next trial."""
    pruner: Literal["median", "hyperband", "none"] = "median"
    """How optuna stops unpromising trials early (per-epoch validation accuracy)."""
    epochs_per_trial: PositiveInt | None = None
    """Epochs each trial trains; null uses `train.epochs`."""
    budget_minutes: Annotated[float, Interval(0.0, 100_000.0, lo_open=True)] | None = None
    """Wall-clock minutes for the search and the final training together. Planned before anything trains, from a
    cost model (each epoch's multiply-accumulates, counted on the network, at the pace of the reference machine:
    2 x86 cores), so every machine plans the same: half for the final training (`train.epochs`, fewer if they do
    not fit beside its `thaw_epochs`), the rest for `trials` of a third as many epochs (or `epochs_per_trial`),
    fewer trials if they do not fit; `train.freeze: auto` freezes 2 or 4 pretrained levels when that is what
    gives the final training 6 epochs, and `train.thaw_epochs: auto` then ends it with 2 that train every level.
    While searching, a trial starts only while it and the final training still fit the clock (the plan's seconds
    at the pace the trials measured against it), so a machine slower than the reference stops early (and then
    the result depends on its speed). The log,
    `metrics.json` (`hpo.plan`, `hpo.skipped_trials`) and the leaderboard say what was planned, run and skipped.
    The first trial always runs and the final training is never cut. null: no plan, every trial runs."""
    space: Annotated[dict[Tunable, SearchDimension], Field(min_length=1)] = {
        "lr": SearchDimension(low=1.0e-4, high=1.0e-2, log=True)
    }
    """Hyperparameters to search and their ranges."""


AUTO_SELECTION = {"detection": "val_map", "multilabel": "val_map"}
"""What `select_by: auto` keeps per task where it is not the lowest validation loss."""


class TrainSection(SpecModel):
    """How the model is trained (always seeded and deterministic on CPU)."""

    epochs: PositiveInt = 15
    """Passes over the training split."""
    batch_size: PositiveInt = 64
    """Images per training step."""
    optimizer: Optimizer = Optimizer()
    """Optimizer and its settings."""
    scheduler: Scheduler = Scheduler()
    """Learning-rate schedule."""
    label_smoothing: Annotated[float, Interval(0.0, 1.0, hi_open=True)] = 0.0
    """Share of probability mass spread over the other classes in the training loss."""
    freeze: Annotated[int, Interval(0, 8)] | Literal["all", "auto"] = "auto"
    """How much of the backbone stays as it was: 0 fine-tunes everything; N keeps its first N levels frozen (timm's
    feature_info: the stem, then each stage that halves the resolution; no gradient flows through them and their
    BatchNorm statistics stay fixed, so each step costs far less on CPU); `all` is a linear probe: the classifier
    alone, trained on features computed once per image (seconds; augmentations do not apply). `auto` (the
    default): 0, unless `hpo.budget_minutes` plans the training and the backbone starts from pretrained weights:
    then the fewest frozen levels (0, 2 or 4) that still give the final training its epochs within the budget."""
    thaw_epochs: NonNegativeInt | Literal["auto"] = "auto"
    """Epochs that train every level after the epochs with `freeze` levels frozen: from the kept epoch's weights,
    at a tenth of the learning rate, whichever phase's best epoch by `select_by` is better is kept. The frozen
    epochs fit the new head on fixed features cheaply; a short pass through every level then adapts the features
    themselves to the data, which frozen features alone cannot (fast.ai's `fine_tune` does the same). Applies
    when `freeze` is a number above 0. `auto` (the default): 0, unless `hpo.budget_minutes` plans the training
    and freezes levels; then the plan gives these epochs their share of the final training's time."""
    warm_start: bool = False
    """Train the classifier alone on cached features first (a linear probe), then fine-tune as `freeze` says from
    there: the new head does not push random gradients into pretrained weights in the first epochs."""
    balance: Literal["none", "sampler", "loss"] = "none"
    """How rare classes get their share: `sampler` draws every class equally often (with replacement, seeded),
    `loss` weighs each class's cross-entropy by the inverse of its share; `none` trains on the data as it is."""
    select_by: Literal["auto", "val_loss", "val_accuracy", "val_macro_f1", "val_min_recall", "val_map"] = "auto"
    """Which epoch's weights are kept. `auto`: the lowest validation loss for classification (steadier on a few
    hundred validation images, where accuracy moves one image at a time), the highest validation mAP50-95 for
    detection and the highest validation mAP over tags for multi-label tagging; a classifier whose gate checks
    every class (`dependability.min_class_recall`) gets `val_min_recall`. Classification may also choose
    the highest validation accuracy, macro-F1 (the mean of per-class F1, so a rare class counts as much as a
    common one) or `val_min_recall` (the recall of the class found least often, what min_class_recall gates);
    detection `val_map` or `val_loss`; multi-label `val_map`, `val_macro_f1` or `val_loss`. The first epoch
    reaching the best value wins; the train log says which epoch was kept and why. A search scores its trials by
    the same figure when it is one to maximise (by the task's own, accuracy or mAP, for `val_loss`)."""

    def selection(self, task: str = "classification") -> str:
        """The figure `select_by` names for `task` (`auto` resolved)."""
        if self.select_by != "auto":
            return self.select_by
        return AUTO_SELECTION.get(task, "val_loss")

    early_stopping_patience: NonNegativeInt = 0
    """Stop after this many epochs without improving the `select_by` figure; 0 never stops early."""
    hpo: Hpo | None = None
    """Hyperparameter search; null trains once with the values above."""
