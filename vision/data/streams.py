"""Image sets that are read or made a batch at a time, so no stage holds a whole split in memory.

Every consumer (training loaders, ONNX Runtime prediction, the corruption sweep, the OOD sets) walks images
in batches; a set is either an in-memory array (tests, small generated sets) or one of these streams:

- `ImageFiles`: canonical image files decoded and resized on access, with random access (`files[i]`,
  `files[3:9]`, `files[[4, 1]]`) for training and the figures that pick single images;
- `Generated`: images made one by one by a seeded generator, started afresh on every pass, so each pass
  yields the same images without keeping any (noise, photo crops);
- `Mapped`: another set's images, each passed through a function made fresh for every pass (a seeded
  corruption or destruction applied in order: the same draws as applying it to the whole array);
- `RawImages`: another set decoded once into a file of raw pixels, for consumers that read every image many
  times (training epochs).

Peak memory is then one batch of images plus whatever the consumer keeps per image (logits, features),
however large the split (benchmarks/memory.py measures it per stage).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vision.data.imageio import load_rgb

BATCH = 64
"""Images per batch when a consumer does not say."""
PIXELS_PER_BATCH = 32 * 224 * 224
"""Input pixels one inference batch may hold (32 images at 224 px, 256 at 79 px or less): a network's
activations grow with the batch's pixels, and the allocator keeps their peak for good."""


def batch_for(height: int, width: int | None = None, *, most: int = 256) -> int:
    """Images per inference batch at `height` x `width` (square when no width): at most `most`, and within
    PIXELS_PER_BATCH."""
    pixels = int(height) * int(height if width is None else width)
    return max(1, min(most, PIXELS_PER_BATCH // max(pixels, 1)))


@runtime_checkable
class ImageStream(Protocol):
    """N images of size x size x 3 uint8, produced a batch at a time; every pass yields the same images."""

    @property
    def shape(self) -> tuple[int, int, int, int]: ...

    def __len__(self) -> int: ...

    def batches(self, size: int = BATCH) -> Iterator[np.ndarray]: ...


Images = np.ndarray | ImageStream
"""What image consumers accept: an N x H x W x 3 uint8 array or a stream of them."""


def batches(images: Images, size: int = BATCH) -> Iterator[np.ndarray]:
    """`images` in consecutive batches of at most `size`, in order."""
    if isinstance(images, np.ndarray):
        for start in range(0, len(images), size):
            yield images[start:start + size]
    else:
        yield from images.batches(size)


def image_bytes(images: Images) -> Iterator[bytes]:
    """The images' raw bytes a batch at a time: together, exactly `array.tobytes()` of them all."""
    return (np.ascontiguousarray(chunk).tobytes() for chunk in batches(images))


def materialise(images: Images) -> np.ndarray:
    """Every image in one array: only for sets known to be small (a handful of explained images, tests)."""
    if isinstance(images, np.ndarray):
        return images
    chunks = list(images.batches())
    return np.concatenate(chunks) if chunks else np.zeros((0, *images.shape[1:]), np.uint8)


def positions(key: Sequence[int] | np.ndarray) -> np.ndarray:
    """Integer positions for an index list or array, or for a boolean mask (as numpy reads one)."""
    key = np.asarray(key)
    return np.flatnonzero(key) if key.dtype == bool else key.astype(np.int64)


def spread(total: int, count: int) -> np.ndarray:
    """`count` positions (all of them when there are fewer) evenly spread over `total`: a sample that holds every
    part of a split. Split files list images class folder by class folder, so a split's first 200 images can be
    one class: int8 ranges calibrated on them are another data set's (on the three-class fabric proxy at 256 px,
    int8 with 7-bit weights scored 0.863 test accuracy calibrated on one class's images, 0.887 on a spread
    sample; 8-bit 0.897 and 0.900)."""
    count = max(0, min(count, total))
    return (np.arange(count, dtype=np.int64) * total) // max(count, 1)


def _empty(size_px: int) -> np.ndarray:
    return np.zeros((0, size_px, size_px, 3), np.uint8)


class ImageFiles:
    """Image files decoded to size x size RGB when read: a split's images without holding them.

    Decoding a canonical PNG at training sizes takes well under a millisecond, far less than a training step,
    so decoding on every epoch costs little and keeps memory flat.
    """

    ndim = 4

    def __init__(self, files: Sequence[Path], size_px: int, load: Callable[[Path, int], np.ndarray] = load_rgb):
        self.files, self.size_px, self._load = list(files), int(size_px), load

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return len(self.files), self.size_px, self.size_px, 3

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        """One image for an int; a stacked array for a slice or a list/array of indices (as numpy indexes)."""
        if isinstance(key, (int, np.integer)):
            return self._load(self.files[int(key)], self.size_px)
        chosen = self.files[key] if isinstance(key, slice) else [self.files[int(i)] for i in positions(key)]
        return np.stack([self._load(file, self.size_px) for file in chosen]) if chosen else _empty(self.size_px)

    def batches(self, size: int = BATCH) -> Iterator[np.ndarray]:
        for start in range(0, len(self.files), size):
            yield self[start:start + size]

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageFiles:
        """The images at `indices`, still unread."""
        return ImageFiles([self.files[int(i)] for i in positions(indices)], self.size_px, self._load)

    def resized(self, size_px: int) -> ImageFiles:
        """The same files read at another size."""
        return ImageFiles(self.files, size_px, self._load)


class RowFile:
    """Rows of one shape and dtype appended to a temporary file and read back by position.

    The file is unlinked from the start and goes with the object, so nothing is left behind; a read returns a
    fresh writable array (from the page cache, as a rule), so memory stays what the reader asks for.
    """

    def __init__(self, folder: Path, dtype: np.dtype | type):
        self.dtype = np.dtype(dtype)
        self.row_shape: tuple[int, ...] = ()
        self.rows = 0
        self._file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 - lives as long as the object

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        self.row_shape = tuple(int(n) for n in rows.shape[1:])
        self._file.write(rows.tobytes())
        self._file.flush()
        self.rows += len(rows)

    def read(self, start: int, count: int) -> np.ndarray:
        row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        buffer = bytearray(count * row_bytes)
        os.preadv(self._file.fileno(), [buffer], start * row_bytes)
        return np.frombuffer(buffer, self.dtype).reshape(count, *self.row_shape)


class RawImages:
    """Another set's images decoded once into a file of raw pixels (RowFile) and read back by position.

    Training reads every image every epoch: decoding and resizing a PNG costs a few milliseconds, a tenth of a
    CPU training step, while reading raw pixels back costs microseconds.
    """

    ndim = 4

    def __init__(self, source: Images, folder: Path):
        self._shape = tuple(int(n) for n in source.shape)
        self._rows = RowFile(folder, np.uint8)
        for chunk in batches(source):
            self._rows.append(chunk)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._shape  # type: ignore[return-value]

    def __len__(self) -> int:
        return self._shape[0]

    def _read(self, start: int, count: int) -> np.ndarray:
        return self._rows.read(start, count) if count else np.zeros((0, *self._shape[1:]), np.uint8)

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            index = int(key) + (len(self) if int(key) < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"image {int(key)} of {len(self)}")
            return self._read(index, 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._read(start, max(stop - start, 0))
            key = range(start, stop, step)
        chosen = positions(key)
        return np.stack([self[int(i)] for i in chosen]) if len(chosen) else np.zeros((0, *self._shape[1:]),
                                                                                     np.uint8)

    def batches(self, size: int = BATCH) -> Iterator[np.ndarray]:
        for start in range(0, len(self), size):
            yield self[start:start + size]


class Generated:
    """`count` images from `make()`, a fresh seeded iterator per pass, so every pass makes the same images."""

    ndim = 4

    def __init__(self, count: int, size_px: int, make: Callable[[], Iterator[np.ndarray]]):
        self.count, self.size_px, self._make = int(count), int(size_px), make

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.count, self.size_px, self.size_px, 3

    def __len__(self) -> int:
        return self.count

    def batches(self, size: int = BATCH) -> Iterator[np.ndarray]:
        made = self._make()
        for start in range(0, self.count, size):
            chunk = [next(made) for _ in range(min(size, self.count - start))]
            yield np.stack(chunk)


class Mapped:
    """Each image of `base` through `make()(image)`, the function made afresh for every pass (it may hold a
    seeded generator that it draws from image by image, in order)."""

    ndim = 4

    def __init__(self, base: Images, make: Callable[[], Callable[[np.ndarray], np.ndarray]]):
        self.base, self._make = base, make

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(int(n) for n in self.base.shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.base)

    def batches(self, size: int = BATCH) -> Iterator[np.ndarray]:
        function = self._make()
        for chunk in batches(self.base, size):
            yield np.stack([function(image) for image in chunk]) if len(chunk) else chunk
