"""A real large-image detection set with small objects: the airborne RGB tiles with hand-drawn tree crowns that
DeepForest ships inside its PyPI wheel (`deepforest`, MIT licence; NEON imagery, Pascal VOC XML, one class
`Tree`): a 2,299 x 2,472 px image with 574 crowns, a 1,249 x 1,035 px one with 279, and a 400 x 400 px one with 61,
crowns of about 15 to 60 px.

The files are read from the installed package's data folder without importing it (deepforest's own imports
pull in geopandas and rasterio): `pip install --no-deps deepforest==2.1.0` installs just the files, and
AUTODL_DEEPFOREST_DATA may name a folder holding them instead. Nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from vision.detection.data import DetectionSplit

SPLITS = {"train": "2019_YELL_2_528000_4978000_image_crop2", "val": "OSBS_029",
          "test": "2019_YELL_2_541000_4977000_image_crop"}
"""One image per split: train on the largest (574 crowns), choose the epoch on a small one from another site,
measure on the second Yellowstone image (279 crowns), which training never sees."""
INSTALL = "pip install --no-deps deepforest==2.1.0"


def data_folder() -> Path | None:
    """The folder holding the images and their XML files, or None when neither the package nor
    AUTODL_DEEPFOREST_DATA provides them."""
    given = os.environ.get("AUTODL_DEEPFOREST_DATA")
    if given:
        return Path(given)
    spec = importlib.util.find_spec("deepforest")  # finds the package without running its __init__
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "data"
    return folder if all((folder / f"{name}.xml").is_file() for name in SPLITS.values()) else None


def _boxes(xml_file: Path) -> np.ndarray:
    boxes = [[float(o.findtext(f"bndbox/{k}") or 0) for k in ("xmin", "ymin", "xmax", "ymax")]
             for o in ET.parse(xml_file).getroot().iter("object") if o.findtext("name") == "Tree"]
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def load(folder: Path) -> dict[str, DetectionSplit]:
    """train/val/test splits of one image each, boxes in image pixels, class 0 (`Tree`)."""
    splits = {}
    for split, name in SPLITS.items():
        boxes = _boxes(folder / f"{name}.xml")
        splits[split] = DetectionSplit(folder, [f"{name}.png"], [boxes], [np.zeros(len(boxes), np.int64)])
    return splits
