"""Perceptual image fingerprints that survive re-encoding, resizing, a thin border and small brightness or
contrast changes: pHash (the DCT of a 32×32 grey thumbnail, the 8×8 lowest frequencies against their median,
as the ``imagehash`` package computes it) and dHash (each pixel of a 9×8 thumbnail against its right-hand
neighbour). A uniform frame around the picture is cut off first, so a re-hosted copy with a border hashes
like the original. Hashes are signed 64-bit integers (a Spark ``long``); ``distance`` counts differing bits.
"""

from __future__ import annotations

import io

import numpy as np

_DCT_SIZE = 32
_LOW = 8


def _dct_matrix(n: int) -> np.ndarray:
    """The unnormalised DCT-II as a matrix (scipy.fftpack.dct's default scaling: each coefficient × 2)."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * x + 1) / (2 * n))


_DCT = _dct_matrix(_DCT_SIZE)


def _to_signed(bits: np.ndarray) -> int:
    value = 0
    for b in bits.ravel():
        value = (value << 1) | int(bool(b))
    return value - (1 << 64) if value >= 1 << 63 else value


def _trim_frame(grey: np.ndarray, tolerance: float = 8.0, max_share: float = 0.15) -> np.ndarray:
    """Cut rows and columns at the edges that are one flat colour (a border added by a re-host), at most
    ``max_share`` of each side; a picture without such a frame is returned as it is."""
    h, w = grey.shape
    top, bottom, left, right = 0, h, 0, w

    def flat(line: np.ndarray, ref: float) -> bool:
        return bool(np.abs(line - ref).max() <= tolerance)

    corner = float(np.median([grey[0, 0], grey[0, -1], grey[-1, 0], grey[-1, -1]]))
    while top < int(h * max_share) and flat(grey[top, left:right], corner):
        top += 1
    while h - bottom < int(h * max_share) and flat(grey[bottom - 1, left:right], corner):
        bottom -= 1
    while left < int(w * max_share) and flat(grey[top:bottom, left], corner):
        left += 1
    while w - right < int(w * max_share) and flat(grey[top:bottom, right - 1], corner):
        right -= 1
    if bottom - top < h // 2 or right - left < w // 2:  # mostly flat: a blank image, not a frame
        return grey
    return grey[top:bottom, left:right]


def _grey(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.draft("L", (256, 256))  # JPEG: decode at a reduced scale, enough for a 32×32 thumbnail
        return np.asarray(img.convert("L"), dtype=np.float64)


def _thumbnail(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))  # 2-D uint8: mode L (Pillow 13 drops the mode argument)
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


def phash_pixels(grey: np.ndarray) -> int:
    """pHash of a grey image given as pixels (as ``imagehash.phash``: no frame cut)."""
    pixels = _thumbnail(grey, (_DCT_SIZE, _DCT_SIZE))
    low = (_DCT @ pixels @ _DCT.T)[:_LOW, :_LOW]
    return _to_signed(low > np.median(low))


def dhash_pixels(grey: np.ndarray) -> int:
    pixels = _thumbnail(grey, (_LOW + 1, _LOW))
    return _to_signed(pixels[:, 1:] > pixels[:, :-1])


def fingerprints(data: bytes) -> tuple[int, int]:
    """(pHash, dHash) of an encoded image, its flat frame cut off; raises on bytes no decoder reads."""
    grey = _trim_frame(_grey(data))
    return phash_pixels(grey), dhash_pixels(grey)


def distance(a: int, b: int) -> int:
    """Bits that differ between two 64-bit hashes (signed or not)."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()
