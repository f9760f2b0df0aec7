"""Cross-field checks that tie the spec's keys to its `task`: a key that means nothing for the task is an
error with a hint (never silently ignored), and each task reads only the source kinds that carry its labels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from core.spec import ProjectSpec
from core.spec.data import (
    BOX_SOURCES,
    PHOTO_MOSAIC_TAGS,
    CocoSource,
    LabelStudioSource,
    ManifestSource,
    PhotoMosaicsSource,
)
from core.spec.loop import CASCADE_STRATEGIES, TAG_STRATEGIES, ActiveLearningSection
from core.spec.project import MIN_CLASSES

if TYPE_CHECKING:
    from compiler.checks import CheckContext, Problem

NOT_FOR_DETECTION: dict[tuple[str, ...], str] = {
    ("model", "input_size_px"): "a detector's input is detection.input_size_px (one side, or [width, height])",
    ("model", "drop_rate"): "the detector has no classifier dropout; remove it",
    ("train", "label_smoothing"): "the detector's focal loss has no label smoothing; remove it",
    ("train", "balance"): "the focal loss already weighs rare, hard boxes up; remove it",
    ("train", "warm_start"): "a detector has no linear-probe warm start; remove it",
    ("data", "quality", "max_class_imbalance"): "detection bounds the imbalance of boxes: "
                                                "data.boxes.max_instance_imbalance",
    ("train", "freeze"): "detectors train every level (freezing backbone levels is built for classifiers only)",
    ("train", "thaw_epochs"): "detectors train every level from the start: there are no frozen levels to thaw",
    ("compress", "sparse_training"): "sparse training is built for classifiers only: use structured_prune",
    ("compress", "quantization", "max_fp32_layers"): "a detector's int8 file keeps at most 8 convolutions in fp32, "
                                                     "ranked on 32 validation images (vision.detection.quantize); "
                                                     "remove it",
    ("compress", "quantization", "sensitivity_images"): "a detector's int8 file ranks its convolutions on 32 "
                                                        "validation images (vision.detection.quantize); remove it",
    ("compress", "quantization", "qat_epochs"): "quantization-aware training is built for classifiers only",
    ("dependability", "min_accuracy"): "a detector is gated on mAP: dependability.min_map and min_map50",
    ("dependability", "min_class_recall"): "a detector is gated on mAP: dependability.min_map and min_map50",
}
"""Keys a detection spec may not set, and why."""

DETECTION_ONLY: tuple[tuple[str, ...], ...] = (("dependability", "min_map50"), ("compress", "student_head"))
"""Keys only a detection spec may set."""
MAP_GATED: tuple[tuple[str, ...], ...] = (("dependability", "min_map"),)
"""Keys only a task gated on mAP (detection, multilabel) may set."""
MULTILABEL_ONLY: tuple[tuple[str, ...], ...] = (("dependability", "min_tag_ap"),)
"""Keys only a multilabel spec may set."""

NOT_FOR_MULTILABEL: dict[tuple[str, ...], str] = {
    ("dependability", "min_accuracy"): "a tagger is gated on mAP over tags and every tag's AP: "
                                       "dependability.min_map and min_tag_ap",
    ("dependability", "min_class_recall"): "a tagger's per-tag floor is dependability.min_tag_ap (average "
                                           "precision, free of the threshold)",
    ("data", "quality", "max_class_imbalance"): "a tagger's imbalance is checked per tag by its validate suite "
                                                "(each tag on enough images); rare tags are weighted up by "
                                                "train.balance: loss",
    ("compress", "student"): "a tagger is compressed by pruning its own channels and quantization; a student "
                             "backbone is built for classifiers only",
}
"""Keys a multilabel spec may not set, and why."""
MULTILABEL_SELECTION = ("auto", "val_loss", "val_map", "val_macro_f1")
MULTILABEL_SOURCES = (ManifestSource, LabelStudioSource, PhotoMosaicsSource)
"""The source kinds that carry an image's tags."""

DETECTION_TUNABLES = ("lr", "weight_decay", "batch_size", "backbone")
DETECTION_SELECTION = ("auto", "val_loss", "val_map")


def _problem(path: tuple[str | int, ...], message: str, hint: str | None = None) -> Problem:
    from compiler.checks import Problem

    return Problem(path, message, hint)


def _was_set(spec: ProjectSpec, path: tuple[str, ...]) -> bool:
    """Whether the spec gives the key a value other than its default (writing the default out is harmless, and
    is what a spec dumped with every key looks like)."""
    parent: object = spec
    for part in path[:-1]:
        parent = getattr(parent, part)
    field = type(parent).model_fields[path[-1]]  # type: ignore[attr-defined]
    return getattr(parent, path[-1]) != field.get_default(call_default_factory=True)


CLASS_COUNT_HINTS = {"classification": "name every class the model must tell apart; for one kind of object to find "
                                       "in images, use task: detection",
                     "multilabel": "for a single tag, use task: classification with two classes (the tag and its "
                                   "absence)"}


def keys_fit_the_task(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    if len(spec.classes) < MIN_CLASSES[spec.task]:
        yield _problem(("classes",), f"task: {spec.task} needs at least {MIN_CLASSES[spec.task]} classes (got "
                       f"{len(spec.classes)})", CLASS_COUNT_HINTS.get(spec.task))
    yield from TASK_KEYS[spec.task](spec)
    if spec.task != "cascade":
        yield from _no_cascade(spec)
    yield from _loop_keys(spec)
    if spec.task != "multilabel":
        for index, source in enumerate(spec.data.sources):
            if isinstance(source, PhotoMosaicsSource):
                yield _problem(("data", "sources", index, "kind"), "photo_mosaics tags each image with several "
                               "classes", "set task: multilabel, or use sklearn_digits for classification")
        for path in MULTILABEL_ONLY:
            if _was_set(spec, path):
                yield _problem(path, f"{'.'.join(path)} applies to task: multilabel only",
                               "set task: multilabel, or remove it")


CLASSIFICATION_STRATEGIES = ("bald", "badge")
"""Selection strategies that need one softmax per image: a detector's uncertainty is per box."""


def _loop_keys(spec: ProjectSpec) -> Iterator[Problem]:
    loop = spec.active_learning
    if spec.dependability.ood.detector == "ensemble" and (loop is None or loop.ensemble is None):
        yield _problem(("dependability", "ood", "detector"), "the ensemble detector needs the data loop's ensemble",
                       "add active_learning.ensemble: {members: 3} (with its pool), or pick another detector")
    if loop is None:
        return
    if spec.task == "detection" and loop.strategy in CLASSIFICATION_STRATEGIES:
        yield _problem(("active_learning", "strategy"), f"{loop.strategy} needs one softmax per image; a detector's "
                       "uncertainty is per box", "use entropy, least_confidence, margin, ensemble, coreset or hybrid")
    for key in ("strategy", "annotator"):
        if getattr(loop, key) == "ensemble" and loop.ensemble is None:
            yield _problem(("active_learning", key), "the ensemble has no members to train",
                           "add active_learning.ensemble: {members: 3}")
    if loop.annotator == "zero_shot" and loop.zero_shot is None:
        yield _problem(("active_learning", "annotator"), "the zero_shot annotator needs its local checkpoint",
                       "add active_learning.zero_shot: {model_path: <folder with an OWLv2 checkpoint>}")
    if loop.annotator == "zero_shot" and spec.task != "detection":
        yield _problem(("active_learning", "annotator"), "the zero-shot grounding detector pre-labels boxes",
                       "use annotator: model or ensemble for a classifier")
    low, high = loop.low_confidence
    if low >= high:
        yield _problem(("active_learning", "low_confidence"), f"[{low}, {high}] is empty",
                       "give [lower, upper] with lower < upper, for example [0.1, 0.5]")


def _keys_not_for(spec: ProjectSpec, table: dict[tuple[str, ...], str]) -> Iterator[Problem]:
    """Each key of `table` the spec sets, with why it means nothing for the spec's task."""
    for path, why in table.items():
        if _was_set(spec, path):
            yield _problem(path, f"{'.'.join(path)} does not apply to task: {spec.task}", why)


def _selection(spec: ProjectSpec, allowed: tuple[str, ...], what: str, hint: str) -> Iterator[Problem]:
    if spec.train.select_by not in allowed:
        yield _problem(("train", "select_by"), f"{spec.train.select_by} {what}", hint)


def _multilabel_keys(spec: ProjectSpec) -> Iterator[Problem]:
    for path in (("detection",), ("data", "boxes"), *DETECTION_ONLY):
        if _was_set(spec, path):
            yield _problem(path, f"{'.'.join(path)} applies to task: detection only",
                           "set task: detection, or remove it")
    yield from _keys_not_for(spec, NOT_FOR_MULTILABEL)
    yield from _selection(spec, MULTILABEL_SELECTION, "is not a tagger's figure",
                          "use val_map (mean over tags of validation AP), val_macro_f1, val_loss or auto")
    yield from _tag_balance(spec)
    yield from _tag_loop(spec)
    yield from _no_class_maps(spec)
    for index, source in enumerate(spec.data.sources):
        if not isinstance(source, MULTILABEL_SOURCES):
            yield _problem(("data", "sources", index, "kind"), f"{source.kind} sources carry no tags",
                           "a tagger reads manifest (path,tags), labelstudio (multiple choices) or photo_mosaics "
                           "sources")
        elif isinstance(source, PhotoMosaicsSource):
            yield from _photo_mosaic_tags(spec, index)


def _tag_loop(spec: ProjectSpec) -> Iterator[Problem]:
    if spec.active_learning is not None:
        yield from _restricted_loop(
            spec.active_learning, TAG_STRATEGIES, "taggers", "a tagger ranks by its per-tag uncertainty",
            (("ensemble", "a tagger's loop trains no ensemble", "remove active_learning.ensemble"),),
            ("model", "zero_shot"), ("a tagger's loop trains no ensemble",
                                     "use annotator: model (the deployable tagger's tags above their thresholds)"))


def _restricted_loop(loop: ActiveLearningSection, strategies: tuple[str, ...], who: str, ranked_by: str,
                     refused: tuple[tuple[str, str, str], ...], annotators: tuple[str, ...],
                     annotator_problem: tuple[str, str]) -> Iterator[Problem]:
    """The loop of a task that offers only some strategies and annotators: each other one, and each set key of
    `refused` (key, why, hint), is an error."""
    if loop.strategy not in strategies:
        yield _problem(("active_learning", "strategy"), f"{loop.strategy} is not built for {who}",
                       f"use {', '.join(strategies)}: {ranked_by}")
    for key, why, hint in refused:
        if getattr(loop, key) is not None:
            yield _problem(("active_learning", key), why, hint)
    if loop.annotator not in annotators:
        yield _problem(("active_learning", "annotator"), *annotator_problem)


def _tag_balance(spec: ProjectSpec) -> Iterator[Problem]:
    if spec.train.balance == "sampler":
        yield _problem(("train", "balance"), "a sampler cannot draw every tag equally often (an image carries "
                       "several)", "use balance: loss (rare tags' positives weighed up) or none")
    hpo = spec.train.hpo
    if hpo is not None and "balance" in hpo.space and "sampler" in (hpo.space["balance"].choices or ()):
        yield _problem(("train", "hpo", "space", "balance"), "a sampler cannot draw every tag equally often",
                       "search choices [none, loss]")


def _photo_mosaic_tags(spec: ProjectSpec, index: int) -> Iterator[Problem]:
    unknown = [name for name in spec.classes if name not in PHOTO_MOSAIC_TAGS]
    if unknown:
        yield _problem(("classes",), f"photo_mosaics (data.sources[{index}]) tags images with "
                       f"{list(PHOTO_MOSAIC_TAGS)} only; {unknown} would never be seen",
                       f"choose classes among {list(PHOTO_MOSAIC_TAGS)}")


def _classification_keys(spec: ProjectSpec) -> Iterator[Problem]:
    for path in (("detection",), ("data", "boxes"), *DETECTION_ONLY, *MAP_GATED):
        if _was_set(spec, path):
            yield _problem(path, f"{'.'.join(path)} applies to task: detection only",
                           "set task: detection, or remove the section")
    if spec.train.select_by == "val_map":
        yield _problem(("train", "select_by"), "val_map is a detection figure",
                       "use val_loss, val_accuracy or val_macro_f1 (or auto)")
    for index, source in enumerate(spec.data.sources):
        if isinstance(source, BOX_SOURCES):
            yield _problem(("data", "sources", index, "kind"), f"{source.kind} sources carry boxes, which "
                           "classification cannot use", "set task: detection, or use image_folder or manifest")
    yield from _no_class_maps(spec)


def _detection_keys(spec: ProjectSpec) -> Iterator[Problem]:
    yield from _keys_not_for(spec, NOT_FOR_DETECTION)
    yield from _selection(spec, DETECTION_SELECTION, "is a classification figure",
                          "use val_map (validation mAP50-95), val_loss or auto")
    if "sparse_train" in spec.compress.methods:
        index = spec.compress.methods.index("sparse_train")
        yield _problem(("compress", "methods", index), "sparse_train is built for classifiers only",
                       "use structured_prune (with distill) for a detector")
    yield from _detection_search(spec)
    yield from _detection_dependability(spec)
    for index, source in enumerate(spec.data.sources):
        if not isinstance(source, (*BOX_SOURCES, LabelStudioSource)):
            yield _problem(("data", "sources", index, "kind"), f"{source.kind} sources carry no boxes",
                           "a detector reads coco, yolo, voc or labelstudio sources; `autodl frames` turns a video "
                           "into an image set to annotate")
    yield from _size_fits_strides(spec)
    yield from _class_maps(spec)


def _no_class_maps(spec: ProjectSpec) -> Iterator[Problem]:
    for index, source in enumerate(spec.data.sources):
        if getattr(source, "class_map", None):
            yield _problem(("data", "sources", index, "class_map"), "class_map maps box categories; it applies to "
                           "task: detection only", "remove class_map, or rename the labels in the source")


def _class_maps(spec: ProjectSpec) -> Iterator[Problem]:
    """Every class a source's class_map names must be one of the spec's classes (a typo would otherwise
    quarantine every box of the mapped categories)."""
    for index, source in enumerate(spec.data.sources):
        for category, target in getattr(source, "class_map", {}).items():
            if target not in spec.classes:
                yield _problem(("data", "sources", index, "class_map", category),
                               f"maps {category!r} to {target!r}, which is not among classes {list(spec.classes)}",
                               "map each annotation category to one of `classes`, or add the class")


CASCADE_SECTIONS = ("augment", "model", "train", "compress", "detection")
"""Sections a cascade spec may not set: each of its models is trained and compressed by its own project."""
CASCADE_GATE = ("min_map", "min_map50", "robustness", "calibration", "ood")
"""The dependability sections a cascade measures and gates end to end; the others are each model's own gate's."""
CASCADE_OOD = ("max_accepted_fraction",)
"""The only OOD key a cascade reads: each model's own OOD detector decides its abstentions."""


def _cascade_keys(spec: ProjectSpec) -> Iterator[Problem]:
    if spec.cascade is None:
        yield _problem(("task",), "task: cascade needs a cascade section",
                       "add cascade: {detector: <detection project>, classifier: <classification project>}")
        return
    for section in CASCADE_SECTIONS:
        if _was_set(spec, (section,)):
            yield _problem((section,), f"a cascade sets no {section} of its own",
                           f"set it in the spec of {spec.cascade.detector} or {spec.cascade.classifier}")
    for path in [*(("dependability", key) for key in type(spec.dependability).model_fields if key not in CASCADE_GATE),
                 *(("dependability", "ood", key) for key in type(spec.dependability.ood).model_fields
                   if key not in CASCADE_OOD)]:
        if _was_set(spec, path):
            yield _problem(path, "a cascade judges its end-to-end mAP, corruption drops, answers on far images and "
                           "calibration only", f"set it in the spec of {spec.cascade.detector} or "
                           f"{spec.cascade.classifier}: each model's own gate judges it")
    yield from _cascade_loop(spec)
    filled = [{"kind": "project", "project": spec.cascade.detector, "class_map": {}}]
    if [source.model_dump() for source in spec.data.sources] != filled or any(
            _was_set(spec, ("data", key)) for key in type(spec.data).model_fields if key != "sources"):
        yield _problem(("data",), "a cascade's images are its detector's test split",
                       f"remove data (the images of {spec.cascade.detector} are read)")


def _cascade_loop(spec: ProjectSpec) -> Iterator[Problem]:
    if spec.active_learning is not None:
        yield from _restricted_loop(
            spec.active_learning, CASCADE_STRATEGIES, "a cascade",
            "a cascade ranks by its most doubtful box or fine class",
            (("ensemble", "a cascade's loop trains no ensemble", "remove active_learning.ensemble"),
             ("auto_label", "a cascade auto-labels nothing: its labels go to the fine project, checked by people",
              "remove active_learning.auto_label"),
             ("zero_shot", "a cascade's queue is pre-labelled by the pair itself", "remove active_learning.zero_shot")),
            ("model",), ("a cascade's queue is pre-labelled by the pair itself", "use annotator: model"))


def _no_cascade(spec: ProjectSpec) -> Iterator[Problem]:
    if spec.cascade is not None:
        yield _problem(("cascade",), f"the cascade section applies to task: cascade only (this is task: {spec.task})",
                       "write the cascade in a spec of its own with task: cascade, or remove the section")


TASK_KEYS = {"classification": _classification_keys, "detection": _detection_keys, "multilabel": _multilabel_keys,
             "cascade": _cascade_keys}
"""Each task's check of the keys that must (not) be set for it."""


DETECTION_OOD = ("auto", "mahalanobis", "knn")
MOVING_CORRUPTIONS = ("elastic", "perspective", "rotation")


def _detection_dependability(spec: ProjectSpec) -> Iterator[Problem]:
    if spec.dependability.ood.detector not in DETECTION_OOD:
        yield _problem(("dependability", "ood", "detector"), f"{spec.dependability.ood.detector} scores one softmax "
                       "per image; a detector's image-level score comes from its pooled features",
                       "use auto, mahalanobis or knn")
    for index, name in enumerate(spec.dependability.robustness.corruptions):
        if name in MOVING_CORRUPTIONS:
            yield _problem(("dependability", "robustness", "corruptions", index), f"{name} moves pixels, so the "
                           "boxes would no longer match the image", "use pixel-only corruptions (fog, rain, snow, "
                           "frost, low_light, motion_blur, pixelate, occlusion, gaussian_noise)")


def _detection_search(spec: ProjectSpec) -> Iterator[Problem]:
    hpo = spec.train.hpo
    for name in hpo.space if hpo is not None else ():
        if name not in DETECTION_TUNABLES:
            yield _problem(("train", "hpo", "space", name), f"{name} cannot be searched for a detector",
                           f"search {', '.join(DETECTION_TUNABLES)}")


def _size_fits_strides(spec: ProjectSpec) -> Iterator[Problem]:
    detection = spec.detection
    assert detection is not None  # a detection spec always has it (ProjectSpec fills the defaults)
    largest = max(detection.strides)
    if any(side % largest for side in detection.size_wh()):
        yield _problem(("detection", "input_size_px"), f"{detection.input_size_px} is not a multiple of the "
                       f"largest stride, {largest}", f"for example {largest * round(detection.size_wh()[0] / largest)}")
    if sorted(set(detection.strides)) != list(detection.strides):
        yield _problem(("detection", "strides"), "strides must be distinct and increasing", "for example [8, 16, 32]")


def synthesized_data_is_read(spec: ProjectSpec, ctx: CheckContext) -> Iterator[Problem]:
    if spec.data.synthesize is None:
        return
    if spec.task != "detection":
        yield _problem(("data", "synthesize"), "digits_on_photos builds a detection data set",
                       "set task: detection, or use the sklearn_digits source for classification")
    elif not synthesized_source_paths(spec):
        yield _problem(("data", "synthesize"), f"no coco source reads what it writes (data/{spec.name}/synthesize)",
                       f"add {{kind: coco, annotations: data/{spec.name}/synthesize/annotations.json}} to "
                       "data.sources")


def synthesized_source_paths(spec: ProjectSpec) -> set[str]:
    """Source paths the project's own `synthesize` stage writes (they need not exist before `dvc repro`)."""
    if spec.data.synthesize is None:
        return set()
    folder = f"data/{spec.name}/synthesize"
    return {path for source in spec.data.sources if isinstance(source, CocoSource)
            for path in (source.annotations, source.images) if path and path.startswith(folder)}
