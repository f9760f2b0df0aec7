"""Hostile and unusual images built in memory: decompression bombs, 16- and 32-bit images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of width x height zeros: a few kilobytes that decode to width*height bytes.
    Written row by row so building it never holds the decoded image."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


def gradient16_png(size: int = 32) -> tuple[bytes, np.ndarray]:
    """A 16-bit grey PNG spanning 0..65535, and its pixels."""
    pixels = np.linspace(0, 65535, size * size).round().astype(np.uint16).reshape(size, size)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue(), pixels


def float_tiff(size: int = 32) -> tuple[bytes, np.ndarray]:
    """A 32-bit float TIFF with values in [0, 1] (a gradient from 1 down to 0), and its pixels."""
    pixels = np.linspace(1.0, 0.0, size * size, dtype=np.float32).reshape(size, size)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="F").save(buffer, format="TIFF")
    return buffer.getvalue(), pixels
