"""Writes the bad images beside this file, byte for byte the same on every run (no timestamps, fixed pixels).

    python tests/data/bad/images/make_bad_images.py

- truncated.png / truncated.jpg: a real 32 x 32 image cut after half its bytes;
- empty.png: zero bytes;
- not_an_image.jpg: text with an image extension;
- huge_header.png: a 68-byte PNG whose header claims 30,000 x 30,000 pixels (a decompression bomb's shape:
  900 million pixels, 2.7 GB as RGB, if anything decoded it).
"""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent


def _gradient() -> Image.Image:
    y, x = np.mgrid[0:32, 0:32]
    return Image.fromarray(np.stack([x * 8, y * 8, (x + y) * 4], axis=-1).astype(np.uint8))


def _encoded(fmt: str) -> bytes:
    out = io.BytesIO()
    _gradient().save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG signature, a header claiming width x height (8-bit grayscale), one row of data, the end."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 16, 9)) + _chunk(b"IEND", b""))


def main() -> None:
    png, jpeg = _encoded("PNG"), _encoded("JPEG")
    (HERE / "truncated.png").write_bytes(png[: len(png) // 2])
    (HERE / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (HERE / "empty.png").write_bytes(b"")
    (HERE / "not_an_image.jpg").write_bytes(b"label,text\ncat,this is a CSV file saved with a .jpg name\n")
    (HERE / "huge_header.png").write_bytes(huge_png())


if __name__ == "__main__":
    main()
