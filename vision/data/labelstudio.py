"""Label Studio's JSON, both ways: the queue goes out as tasks with `predictions` (pre-annotations people
correct rather than draw), the labels come back as a JSON export with `annotations`.

The formats are Label Studio's documented ones (labelstud.io/guide/task_format, /guide/predictions):
`choices` for an image's class, `rectanglelabels` for boxes with x, y, width and height in percent of the
image. Written here rather than with `label-studio-sdk`: its converter pulls in the whole SDK and its HTTP
client for what is a few dictionaries, and reading must also be strict about hostile exports (what a task
may point at, which annotation counts).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

FROM_NAME = "label"
"""The control tag's name in the label config this module writes; exports of other configs are read by type."""
TO_NAME = "image"
META_PREFIX = "autodl_"
"""Task `data` keys the queue adds (Label Studio keeps a task's data as given): where the image came from."""
LOCAL_FILES = "/data/local-files/?d="
HOW_TO_EXPORT = ("export the project with Export -> JSON (or GET /api/projects/<id>/export?exportType=JSON"
                 "&download_all_tasks=true), not JSON-MIN, CSV, TSV or COCO")


class LabelKind:
    """How one task's labels look in Label Studio: the control of its labelling interface, and how a result of
    an export becomes a label. A task names its kind (SINGLE_CHOICE, RECTANGLES...); the reader and the queue
    writer are the same for all."""

    result_type = ""
    """The `type` of a result this kind reads (`choices`, `rectanglelabels`)."""

    def control(self, labels: str) -> str:
        """The interface's control around the `<Choice>`/`<Label>` elements `labels`."""
        raise NotImplementedError

    element = "Choice"
    """The element naming one class inside the control."""

    def take(self, value: dict[str, Any], found: Labelled) -> str | None:
        """Record one result's value in `found`; the reason it cannot be used, or None."""
        raise NotImplementedError

    def missing(self, found: Labelled) -> str | None:
        """Why an annotation whose results were all read still labels nothing, or None when it labels."""
        return None

    def results(self, guesses: list[Guess], width: int, height: int) -> list[dict[str, Any]]:
        """A pre-annotation's results for the model's guesses (one per guess unless the kind says otherwise)."""
        return one_result_per_guess(guesses, width, height)


class SingleChoice(LabelKind):
    """One class per image (classification)."""

    result_type = "choices"

    def control(self, labels: str) -> str:
        return f'<Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single">{labels}\n  </Choices>'

    def take(self, value: dict[str, Any], found: Labelled) -> str | None:
        choices = value.get("choices")
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], str):
            return f"choices must hold exactly one class, got {choices!r}"
        found.label = choices[0]
        return None

    def missing(self, found: Labelled) -> str | None:
        return "annotation has no class chosen" if found.label is None else None


class Rectangles(LabelKind):
    """Axis-aligned boxes, one class each (detection)."""

    result_type = "rectanglelabels"
    element = "Label"

    def control(self, labels: str) -> str:
        return f'<RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">{labels}\n  </RectangleLabels>'

    def take(self, value: dict[str, Any], found: Labelled) -> str | None:
        return _box(value, found)


SINGLE_CHOICE, RECTANGLES = SingleChoice(), Rectangles()


def label_config(classes: list[str], kind: LabelKind) -> str:
    """The Label Studio labelling interface for the project (Settings -> Labeling Interface -> Code)."""
    from xml.sax.saxutils import quoteattr

    labels = "".join(f"\n    <{kind.element} value={quoteattr(c)}/>" for c in classes)
    return f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n  {kind.control(labels)}\n</View>\n'


@dataclass(frozen=True)
class Guess:
    """One pre-annotation: a class for the whole image (box None) or a box in pixels xyxy."""

    label: str
    score: float
    box: tuple[float, float, float, float] | None = None
    note: str = ""
    """Shown beside the region in Label Studio (its meta text): what else the model said of it, such as the
    coarse class and both scores of a cascade's box."""


def percent_box(box: tuple[float, float, float, float], width: int, height: int) -> dict[str, float]:
    """xyxy pixels -> Label Studio's value (top-left x, y and size in percent of the image)."""
    x1, y1, x2, y2 = box
    return {"x": 100.0 * x1 / width, "y": 100.0 * y1 / height, "width": 100.0 * (x2 - x1) / width,
            "height": 100.0 * (y2 - y1) / height, "rotation": 0}


def prediction(guesses: list[Guess], width: int, height: int, model_version: str, kind: LabelKind | None = None
               ) -> dict[str, Any]:
    """A task's `predictions` entry: the guesses as results of the project's label kind (by default one result per
    guess: a choice, or a box), with their scores; the entry's score is the mean."""
    results = (kind or LabelKind()).results(guesses, width, height)
    score = float(sum(g.score for g in guesses) / len(guesses)) if guesses else 1.0
    return {"model_version": model_version, "score": round(score, 6), "result": results}


def one_result_per_guess(guesses: list[Guess], width: int, height: int) -> list[dict[str, Any]]:
    results = []
    for index, guess in enumerate(guesses):
        result: dict[str, Any] = {"id": f"p{index}", "from_name": FROM_NAME, "to_name": TO_NAME,
                                  "original_width": width, "original_height": height, "image_rotation": 0,
                                  "score": round(float(guess.score), 6)}
        if guess.box is None:
            result |= {"type": "choices", "value": {"choices": [guess.label]}}
        else:
            value = {k: round(v, 6) for k, v in percent_box(guess.box, width, height).items()}
            result |= {"type": "rectanglelabels", "value": {**value, "rectanglelabels": [guess.label]}}
        if guess.note:
            result["meta"] = {"text": [guess.note]}
        results.append(result)
    return results


def task(image_url: str, meta: dict[str, Any], predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """One import task: the image, where it came from (`autodl_*` keys), and its pre-annotations."""
    return {"data": {"image": image_url, **{META_PREFIX + k: v for k, v in meta.items()}}, "predictions": predictions}


# ---- labels back ----------------------------------------------------------------------------------------------


class ExportError(ValueError):
    """The file is not a Label Studio JSON export at all (a task list)."""


@dataclass
class Labelled:
    """What one exported task says about its image."""

    image: str
    """The image reference: an `autodl_path` of the queue, else the task's `data.image` URL."""
    meta: dict[str, Any]
    label: str | None = None
    """Classification: the chosen class."""
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    """Detection: (class, x1, y1, x2, y2) as fractions of the image's width and height."""
    annotator: str = ""
    confirmed: bool = True
    """False for a model's prediction taken as the label (accept_predictions)."""
    problems: list[str] = field(default_factory=list)
    """Results that cannot be used (unknown types, boxes without a class, values out of range)."""


def read_export(path: Path) -> list[dict[str, Any]]:
    """The tasks of a Label Studio JSON export (Export -> JSON), or ExportError naming the format it is instead.
    Only the full JSON keeps what the loop needs: each task's `data` (where the image came from), every
    annotation with its author and whether it was cancelled."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not a JSON file ({exc}); Label Studio's CSV and TSV exports drop the "
                          f"annotations' authors and cancellations: {HOW_TO_EXPORT}") from None
    if isinstance(data, dict) and {"images", "annotations", "categories"} <= set(data):
        raise ExportError(f"{path}: a COCO export, which keeps no annotator, round or cancellation: "
                          f"{HOW_TO_EXPORT}, or read it with a coco source")
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise ExportError(f"{path}: not a Label Studio JSON export (a list of tasks): {HOW_TO_EXPORT}")
    if data and not any(isinstance(t.get("data"), dict) for t in data):
        flat = "JSON-MIN" if any({"annotation_id", "annotator", "lead_time"} & set(t) for t in data) else "flat"
        raise ExportError(f"{path}: a {flat} export (one flat record per annotation, no task `data`, no "
                          f"cancelled annotations): {HOW_TO_EXPORT}")
    return data


def _who(annotation: dict[str, Any]) -> str:
    """`labelstudio:<email>` where the export names the person (a snapshot export with the annotators' details),
    `labelstudio:user-<id>` where it gives only the user id (the default JSON export)."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or (f"user-{who['id']}" if who.get("id") is not None else None)
    elif isinstance(who, int) and not isinstance(who, bool):
        who = f"user-{who}"
    return f"labelstudio:{who}" if who not in (None, "") else "labelstudio:unknown"


def image_key(item: dict[str, Any]) -> str | None:
    """What identifies a task's image across the queue and the export: the queue's `autodl_path`, else the
    image reference."""
    data = item.get("data")
    if not isinstance(data, dict):
        return None
    key = data.get(META_PREFIX + "path") or data.get("image")
    return key if isinstance(key, str) else None


def with_queue_predictions(item: dict[str, Any], queued: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The exported task with the queue's prediction objects in place of the ids an export holds."""
    original = queued.get(image_key(item) or "")
    if original is None or all(isinstance(p, dict) for p in item.get("predictions") or []):
        return item
    return {**item, "predictions": original.get("predictions") or []}


def chosen_annotation(item: dict[str, Any], accept_predictions: bool) -> tuple[dict[str, Any] | None, str, bool]:
    """(the annotation whose result counts, who made it, whether a person did) or (None, why not, False).
    The last annotation not cancelled counts (a reviewer's correction comes after the first pass)."""
    annotations = [a for a in item.get("annotations") or [] if isinstance(a, dict)]
    kept = [a for a in annotations if not a.get("was_cancelled")]
    if kept:
        return kept[-1], _who(kept[-1]), True
    if annotations:
        return None, "every annotation of the task was cancelled (skipped by the annotator)", False
    exported = item.get("predictions") or []
    predictions = [p for p in exported if isinstance(p, dict)]
    if accept_predictions and predictions:
        best = max(predictions, key=lambda p: _number(p.get("score")) or 0.0)
        return best, f"model:{best.get('model_version', 'unknown')}", False
    if accept_predictions and exported:
        return None, ("not annotated; its predictions are exported as ids, not results: name the round's "
                      "labelstudio_tasks.json as the source's queue to take them"), False
    return None, "not annotated yet", False


def interpret(item: dict[str, Any], kind: LabelKind, accept_predictions: bool) -> Labelled | str:
    """One exported task -> its labels, or why the task carries none (a reason to list, not an error)."""
    data = item.get("data")
    if not isinstance(data, dict):
        return "task has no data object"
    meta = {k.removeprefix(META_PREFIX): v for k, v in data.items() if k.startswith(META_PREFIX)}
    image = meta.get("path") or data.get("image")
    if not isinstance(image, str) or not image:
        return "task has no image (data.image)"
    annotation, who, confirmed = chosen_annotation(item, accept_predictions)
    if annotation is None:
        return who
    found = Labelled(image, meta, annotator=who, confirmed=confirmed)
    results = annotation.get("result") or []
    for index, result in enumerate(results if isinstance(results, list) else []):
        problem = _take(result, kind, found)
        if problem:
            found.problems.append(f"result {index}: {problem}")
    missing = kind.missing(found)
    if missing:
        return missing + (f" ({'; '.join(found.problems)})" if found.problems else "")
    return found


def _take(result: object, kind: LabelKind, found: Labelled) -> str | None:
    if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
        return "not a result object"
    if result.get("type") != kind.result_type:
        return f"result type {result.get('type')!r} is not used here (this project reads {kind.result_type!r})"
    return kind.take(result["value"], found)


def _box(value: dict[str, Any], found: Labelled) -> str | None:
    labels = value.get("rectanglelabels")
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
        return f"a box needs exactly one class, got {labels!r}"
    x, y, w, h = (_number(value.get(k)) for k in ("x", "y", "width", "height"))
    if x is None or y is None or w is None or h is None:
        return "box without finite x, y, width and height"
    rotation = _number(value.get("rotation", 0)) or 0.0
    if abs(rotation) % 360 > 1e-6:
        return f"rotated box ({rotation} degrees): only axis-aligned boxes are used"
    found.boxes.append((labels[0], x / 100.0, y / 100.0, (x + w) / 100.0, (y + h) / 100.0))
    return None


def _number(value: object) -> float | None:
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def local_path(image: str) -> str:
    """A task's image reference as a path relative to the source's image folder, or raises ValueError for
    references that are not local files (never fetched)."""
    if image.startswith(LOCAL_FILES):
        return unquote(image[len(LOCAL_FILES):])
    if image.startswith("/data/upload/"):
        return unquote(image.rsplit("/", 1)[-1])  # uploads keep the file name (after an 8-hex prefix)
    if "://" in image or image.startswith("data:"):
        raise ValueError(f"remote image {image[:80]!r} is never downloaded: copy the images into the repository "
                         "and export with local-files storage, or set the source's images: folder")
    return unquote(image)
