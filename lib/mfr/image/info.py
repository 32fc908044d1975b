"""Read an image's size and format from its header, without decoding the pixels."""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

from PIL import Image


class ImageInfo(NamedTuple):
    width: int
    height: int
    format: str


def image_info(data: bytes | None) -> ImageInfo | None:
    """Width, height and format from the header, or None when the bytes are not a readable image.

    Only the header is parsed, so huge or truncated images cost almost nothing here; deciding whether
    an image is corrupt is the cleaning stage's job.
    """
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decompression-bomb warnings: size is all we read
            with Image.open(io.BytesIO(data)) as img:
                return ImageInfo(int(img.width), int(img.height), str(img.format or "UNKNOWN"))
    except Exception:
        return None
