"""A small-local-feature proxy task built offline from photos that ship in scikit-image.

Like an industrial inspection set: grey 250 x 250 crops of real textures
(brick, grass, gravel) in three classes. `nominal` is the texture as it is;
`local_defect` carries one dark or bright blotch of about 10 x 10 pixels
somewhere in the crop (invisible once the image is shrunk 2x or more);
`global_defect` is the same texture at a coarser scale over the whole crop.
Seeded: the same call gives the same images.

`textures` is the easier sibling, for benchmarks that need a model near 99%
(compression losses show there): the class is the texture itself, each crop at
a random scale (a sixth of the texture's detail to all of it), orientation, brightness, contrast
and sensor noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["nominal", "local_defect", "global_defect"]
SIZE = 250
TEXTURES = ("brick", "grass", "gravel")


def _textures() -> list[np.ndarray]:
    from skimage import data

    return [np.asarray(getattr(data, name)(), dtype=np.uint8) for name in TEXTURES]


def _crop(texture: np.ndarray, rng: np.random.Generator, side: int) -> np.ndarray:
    top = int(rng.integers(0, texture.shape[0] - side + 1))
    left = int(rng.integers(0, texture.shape[1] - side + 1))
    return texture[top:top + side, left:left + side]


def _blotch(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = image.astype(np.float32)
    cy, cx = (int(rng.integers(20, SIZE - 20)) for _ in range(2))
    ry, rx = rng.uniform(4.0, 6.0, 2)
    yy, xx = np.ogrid[:SIZE, :SIZE]
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    out[mask] += float(rng.choice([-1, 1]) * rng.uniform(70, 110))
    return np.clip(out, 0, 255).astype(np.uint8)


def fabric(per_class: dict[str, int], seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Grey images (H x W uint8) and their class names."""
    rng = np.random.default_rng(seed)
    textures = _textures()
    images, labels = [], []
    for name in CLASSES:
        for _ in range(per_class[name]):
            texture = textures[int(rng.integers(len(textures)))]
            if name == "global_defect":
                coarse = _crop(texture, rng, int(SIZE * 0.6))
                image = np.asarray(Image.fromarray(coarse).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
            else:
                image = _crop(texture, rng, SIZE)
            if rng.random() < 0.5:
                image = image[:, ::-1]
            images.append(_blotch(image, rng) if name == "local_defect" else np.ascontiguousarray(image))
            labels.append(name)
    return images, labels


def textures(count: int, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """`count` grey crops (H x W uint8), a third of each texture, labelled with the texture's name."""
    rng = np.random.default_rng(seed)
    sources = dict(zip(TEXTURES, _textures(), strict=True))
    images, labels = [], []
    for index in range(count):
        name = TEXTURES[index % len(TEXTURES)]
        crop = _crop(sources[name], rng, int(rng.integers(40, SIZE + 1)))
        image = np.asarray(Image.fromarray(crop).resize((SIZE, SIZE), Image.Resampling.BICUBIC), np.float32)
        image = (image - image.mean()) * rng.uniform(0.4, 1.4) + image.mean() + rng.uniform(-50, 50)
        image += rng.normal(0.0, rng.uniform(0.0, 30.0), image.shape)
        image = np.rot90(np.clip(image, 0, 255).astype(np.uint8), int(rng.integers(4)))
        images.append(np.ascontiguousarray(image[:, ::-1] if rng.random() < 0.5 else image))
        labels.append(name)
    return images, labels


def write_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """The images as an `image_folder` source: `<root>/<class>/<n>.png`."""
    images, labels = fabric(per_class, seed)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    return root
