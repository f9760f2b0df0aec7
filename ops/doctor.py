"""`autodl doctor`: look at the ingested data before training and say which spec keys fit it better.

Reads what the ingest stage recorded of every image (its size and class, in
`data/<p>/ingest/manifest.csv`, and a detector's boxes) and compares it with the
spec: an input size that shrinks the typical image so far that small details
vanish, a class rare enough to need balancing, too few images to train a
backbone from scratch, boxes that a detector's letterbox shrinks below its
finest cell (tiling).
Each hint names the spec key to change. Pure: no image is opened, no model
is loaded, so it answers in a second on any data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import median, median_low, quantiles

from core.fsutil import read_csv
from core.model_choice import ModelChoice, choose_model
from core.registry import resolve
from core.sizes import median_shorter_side, native_input_size
from core.spec import ProjectSpec
from core.spec.detection import DetectionSection

DOWNSAMPLE_WARN = 1.5
"""Shrinking the typical image by more than this loses details a few pixels wide."""
RARE_RATIO = 0.25
"""A class with fewer images than this share of the largest class needs balancing."""
FEW_PER_CLASS = 100
"""Fewer images than this in some class: training a backbone from scratch is unlikely to generalise."""
SMALL_OBJECT_PX = 8.0
"""A box whose shorter side letterboxing shrinks below this is smaller than a cell of the finest feature level
(stride 8): the detector can hardly find it."""


@dataclass(frozen=True)
class Hint:
    key: str
    """The spec key to change."""
    message: str


@dataclass(frozen=True)
class DataSummary:
    images: int
    median_size: tuple[int, int]
    """Median width and height, in pixels."""
    short_side: tuple[int, int, int]
    """10th percentile, median and 90th percentile of each image's shorter side."""
    per_class: dict[str, int]

    def lines(self) -> list[str]:
        low, mid, high = self.short_side
        counts = ", ".join(f"{name} {count:,}" for name, count in self.per_class.items())
        return [f"{self.images:,} images; median size {self.median_size[0]}x{self.median_size[1]} px; shorter side "
                f"{low}-{high} px (10th-90th percentile, median {mid})", f"per class: {counts}"]


def summarise(sizes: list[tuple[int, int]], labels: list[str], classes: list[str]) -> DataSummary:
    short = [min(width, height) for width, height in sizes]
    deciles = quantiles(short, n=10, method="inclusive") if len(short) > 1 else [short[0]] * 9
    low, high = round(deciles[0]), round(deciles[-1])
    typical = (int(median_low(w for w, _ in sizes)), int(median_low(h for _, h in sizes)))
    return DataSummary(len(sizes), typical, (low, round(median_shorter_side(sizes) or 0), high),
                       {name: labels.count(name) for name in classes})


def model_choice(spec: ProjectSpec, sizes: list[tuple[int, int]]) -> ModelChoice:
    """What the train stage will train: the spec's model with its `auto` keys decided as the stage decides them."""
    hardware = None if spec.detection is not None else spec.target.hardware  # a detector's size is its own
    return choose_model(spec.model, sizes, hardware, spec.compress.budget.max_latency_ms)


def hints(spec: ProjectSpec, summary: DataSummary, choice: ModelChoice) -> list[Hint]:
    """Hints for a classifier or tagger about to train `choice` (see `model_choice`)."""
    found: list[Hint] = []
    size, (_, typical, _) = choice.input_size_px, summary.short_side
    factor = typical / size
    if factor > DOWNSAMPLE_WARN:
        native = native_input_size([(typical, typical)])
        found.append(Hint("model.input_size_px", (
            f"the typical image's shorter side is {typical} px: input_size_px {size} shrinks it {factor:.1f}x, so "
            f"details under about {factor:.0f} px vanish (small defects, signs and distant cars first); try "
            f"input_size_px: {native}, or let the search choose (train.hpo.space.input_size_px: "
            f"{{choices: [{size}, {native}]}})")))
    counts = {name: count for name, count in summary.per_class.items()}
    largest_name = max(counts, key=lambda name: (counts[name], name))
    rare = sorted((count, name) for name, count in counts.items() if count < RARE_RATIO * counts[largest_name])
    if rare and spec.train.balance == "none":
        named = ", ".join(f"'{name}' {count:,}" for count, name in rare)
        found.append(Hint("train.balance", (
            f"rare class(es): {named} against '{largest_name}' {counts[largest_name]:,}: set train.balance: sampler "
            "(or loss) and train.select_by: val_macro_f1, and guard them with dependability.min_class_recall")))
    fewest = min(counts.values())
    if fewest < FEW_PER_CLASS and choice.pretrained is None:
        found.append(Hint("model.pretrained", (
            f"the smallest class has {fewest:,} images: a backbone trained from scratch rarely generalises from so "
            "few; start from the offline ImageNet weights (model.pretrained: efficientnet_lite0_imagenet with "
            "model.backbone: tf_efficientnet_lite0)")))
    return found


def box_hints(detection: DetectionSection, sizes: dict[str, tuple[int, int]], boxes: list[dict[str, str]]
              ) -> list[Hint]:
    """Tiling when letterboxing whole images into the detector's input shrinks the typical box below
    SMALL_OBJECT_PX (aerial and dash-cam images: small objects in large frames)."""
    input_wh = detection.size_wh()
    shrunk, native = [], []
    for row in boxes:
        width, height = sizes.get(row["path"], (0, 0))
        if not width or not height:
            continue
        side = min(float(row["x2"]) - float(row["x1"]), float(row["y2"]) - float(row["y1"]))
        native.append(side)
        shrunk.append(side * min(input_wh[0] / width, input_wh[1] / height))
    if not shrunk or detection.tiling is not None or median(shrunk) >= SMALL_OBJECT_PX:
        return []
    typical = (int(median_low(w for w, _ in sizes.values())), int(median_low(h for _, h in sizes.values())))
    return [Hint("detection.tiling", (
        f"the median box is {median(native):.0f} px on its shorter side in images of about {typical[0]}x"
        f"{typical[1]} px: letterboxed whole into the {input_wh[0]}x{input_wh[1]} input it becomes "
        f"{median(shrunk):.1f} px, below the finest level's {SMALL_OBJECT_PX:.0f} px cell; train and detect on "
        f"tiles of the input's size (detection.tiling: {{overlap: 0.2}}), which keep every object's pixels"))]


def manifest_path(root: Path, project: str) -> Path:
    _stage, template = resolve("ingest.manifest")
    return root / template.format(project=project)


def examine(root: Path, spec: ProjectSpec) -> tuple[DataSummary, ModelChoice, list[Hint]]:
    """The summary, the model the train stage will train and the hints for a project whose ingest stage has run;
    FileNotFoundError when it has not."""
    rows = read_csv(manifest_path(root, spec.name))
    if not rows:
        raise ValueError(f"{manifest_path(root, spec.name)} lists no image")
    sizes = [(int(r["width"]), int(r["height"])) for r in rows]
    summary = summarise(sizes, [r["label"] for r in rows], list(spec.classes))
    choice = model_choice(spec, sizes)
    if spec.detection is None:
        return summary, choice, hints(spec, summary, choice)
    # a detector: its input is detection.input_size_px and what matters is the size of its boxes in it
    boxes = read_csv(manifest_path(root, spec.name).with_name("boxes.csv"))
    by_path = {r["path"]: (int(r["width"]), int(r["height"])) for r in rows}
    return summary, choice, box_hints(spec.detection, by_path, boxes)
