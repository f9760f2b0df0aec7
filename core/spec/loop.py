"""The `active_learning` section: the data loop. An unlabelled pool is scored by the model, the round's most
useful images go to people as a label queue with the model's guesses as pre-annotations, and the labels come
back as a `labelstudio` source (core.spec.data) for the next `dvc repro`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.spec._base import Fraction, Interval, PositiveFloat, PositiveInt, RepoPath, SpecModel

TAG_STRATEGIES = ("entropy", "least_confidence", "margin", "random", "coreset", "hybrid")
"""The strategies a tagger's round can rank or spread by (no MC dropout, ensemble or gradient embedding)."""
CASCADE_STRATEGIES = ("random", "least_confidence", "coreset", "hybrid")
"""The strategies a detect-then-classify pair's round can rank or spread by: its one figure, the most doubtful box
or fine class of an image (no MC dropout, ensemble or gradient embedding)."""


class PoolImages(SpecModel):
    """A folder of unlabelled images, read recursively (any sub-folders, no class folders needed)."""

    kind: Literal["images"]
    """Pool source type."""
    path: RepoPath
    """Folder relative to the repository root."""


class PoolVideo(SpecModel):
    """Frames sampled from video files, static stretches dropped as for a labelled video source."""

    kind: Literal["video"]
    """Pool source type."""
    path: RepoPath
    """A video file, or a folder read recursively for video files."""
    fps: PositiveFloat = 2.0
    """Frames sampled per second of video."""


class PoolCaptures(SpecModel):
    """What the model server captured in production (`serving.capture`), fetched into a local folder with
    `autodl captures fetch`: each image beside a JSON record of why it was captured."""

    kind: Literal["captures"]
    """Pool source type."""
    path: RepoPath
    """The local capture folder relative to the repository root."""


PoolSource = Annotated[PoolImages | PoolVideo | PoolCaptures, Field(discriminator="kind")]


class AutoLabel(SpecModel):
    """Pool images the model is sure of are labelled by it, kept apart from human labels: they carry their
    provenance, stay out of validation and test, and enter training only through a `labelstudio` source with
    `accept_predictions: true`."""

    min_confidence: Annotated[float, Interval(0.5, 1.0)] = 0.98
    """A classifier's image is auto-labelled when its calibrated top probability reaches this; a detector's when
    every detection above `active_learning.low_confidence`'s upper bound reaches it and none lies in between."""
    max_images: PositiveInt = 1000
    """Most images auto-labelled per round (the surest first)."""


class ZeroShot(SpecModel):
    """A zero-shot grounding detector from `transformers` (OWLv2) prompted with the class names, for projects
    without a model of their own yet. Loaded only from a local folder (`save_pretrained` layout); nothing is
    downloaded."""

    model_path: RepoPath
    """Folder holding the checkpoint (config.json, weights, processor files) relative to the repository root."""
    score_threshold: Fraction = 0.1
    """Detections scoring below this are not offered as pre-annotations."""


class Ensemble(SpecModel):
    """Deep ensembles (Lakshminarayanan et al. 2017; for active learning, Beluch et al. 2018): members trained
    like the project's model with other seeds, in a stage of their own (cached by DVC, so a new pool does not
    retrain them)."""

    members: Annotated[int, Interval(2, 16)] = 3
    """Models of the ensemble: the trained model and members trained with seeds seed+1, seed+2, ..."""
    epochs: PositiveInt | None = None
    """Training epochs of each extra member; null uses `train.epochs`."""


class ActiveLearningSection(SpecModel):
    """The data loop: which unlabelled images to score, how a round picks the images people label, and who
    pre-labels them."""

    pool: Annotated[list[PoolSource], Field(min_length=1)]
    """Unlabelled sources. Their images go through the ingest checks, near-duplicates of labelled images and of
    each other are dropped, and none ever enters validation or test."""
    strategy: Literal["random", "least_confidence", "margin", "entropy", "bald", "ensemble", "coreset", "badge",
                      "hybrid"] = "hybrid"
    """How the round is chosen: by one uncertainty score (`least_confidence`, `margin`, `entropy`; `bald`: mutual
    information of `mc_passes` dropout passes; `ensemble`: disagreement of the `ensemble`'s members, trained with
    other seeds), by diversity alone (`coreset`: k-center on embeddings), or by both (`badge`: k-means++ over
    gradient embeddings, classification only; `hybrid`: the `hybrid_pool` most uncertain by margin (a detector:
    its box entropy), then k-center among them), or `random` as the baseline."""
    batch_size: PositiveInt = 50
    """Images sent to people per round."""
    hybrid_pool: Annotated[float, Interval(1.0, 100.0)] = 4.0
    """`hybrid` keeps this many times `batch_size` of the most uncertain images before choosing diverse ones."""
    mc_passes: Annotated[int, Interval(2, 200)] = 16
    """Stochastic forward passes of `bald`."""
    mc_dropout: Annotated[float, Interval(0.0, 0.9, lo_open=True)] = 0.3
    """Dropout probability on the pooled features during the `bald` passes."""
    ensemble: Ensemble | None = None
    """The ensemble behind `strategy: ensemble` and `annotator: ensemble` (required by them); null trains none."""
    low_confidence: Annotated[list[Fraction], Field(min_length=2, max_length=2)] = [0.1, 0.5]
    """Detection: [lower, upper] calibrated score of a box the model is unsure of; the count of such boxes is one
    of an image's uncertainty figures."""
    annotator: Literal["model", "ensemble", "zero_shot"] = "model"
    """Who pre-labels the queue: the project's deployable model, the ensemble's mean, or the `zero_shot` grounding
    detector (detection)."""
    zero_shot: ZeroShot | None = None
    """The grounding detector, required when `annotator` is `zero_shot`."""
    auto_label: AutoLabel | None = None
    """Opt-in: also write what the model is sure of as auto-labels; null writes none."""
    image_url_prefix: str = "/data/local-files/?d="
    """Prefix of the queue's image URLs: Label Studio's local-files storage (start it with
    LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to the repository root); the path after it is relative to that
    root."""
