"""Image cleaning on bytes: reject what cannot be used, fix only what needs fixing.

* Only raster formats are opened; vector/document formats are ``image_unsupported``.
* The pixel count is checked from the header before any pixel is allocated (``image_too_large``), and
  Pillow's decompression-bomb warning is an error.
* Every image is decoded to its end, so a truncated or damaged file is ``image_corrupt``. A JPEG that
  stays as it is is decoded at 1/8 scale: the whole entropy-coded stream is still read (truncation is
  caught) but the inverse DCT and colour conversion run on 1/64 of the pixels.
* An image that is RGB, upright and within ``max_size`` keeps its original bytes (same ``image_id``).
* Otherwise: EXIF orientation applied, converted to RGB (alpha composited on white, 16-bit scaled,
  palette/CMYK/grey expanded), longest edge resized to ``max_size`` with LANCZOS keeping aspect (a
  JPEG is first decoded at the smallest DCT scale still above the target), and re-encoded: JPEG
  sources as JPEG q95 (they are photographs already lossy; PNG would be 5-10x larger for nothing),
  everything else as PNG (lossless: diagrams and text suffer from JPEG artefacts).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RASTER_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO")
_JPEG = ("JPEG", "MPO")
_NON_RASTER_MAGIC = (b"<svg", b"<?xml", b"%PDF", b"%!PS", b"<!DOCTYPE", b"<html")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own bomb threshold (~0.25 GiB of RGBA)
_ORIENTATION = 0x0112


@dataclass
class CleanedImage:
    reject: str | None  # image_missing | image_corrupt | image_unsupported | image_too_large | None
    data: bytes | None = None  # new bytes when the image changed, else None (original kept)
    width: int | None = None
    height: int | None = None
    format: str | None = None
    actions: list[str] = field(default_factory=list)
    detail: str | None = None

    @property
    def changed(self) -> bool:
        return self.data is not None


def _sniff_non_raster(data: bytes) -> bool:
    head = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return any(head.startswith(m.lower()) for m in _NON_RASTER_MAGIC)


def _target(width: int, height: int, max_size: int) -> tuple[int, int]:
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    mode = img.mode
    if mode == "RGB":
        return img, None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = float(arr.max()) if arr.size else 0.0
        if mode == "F" and top <= 1.0:
            arr = arr * 255.0
        elif top > 255.0:
            arr = arr / 257.0  # 16-bit range → 8-bit
        grey = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))  # 2-D uint8: mode L
        return grey.convert("RGB"), f"rgb_from_{mode.replace(';', '')}"
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), f"rgb_from_{mode}_on_white"
    return img.convert("RGB"), f"rgb_from_{mode}"


def _open(data: bytes) -> Image.Image:
    Image.init()  # registers every plugin, so each name in RASTER_FORMATS is known
    return Image.open(io.BytesIO(data), formats=[f for f in RASTER_FORMATS if f in Image.OPEN])


def clean_image(data: bytes | None, max_size: int = 2048, max_pixels: int = DEFAULT_MAX_PIXELS) -> CleanedImage:
    """Decide and, where needed, fix one image. Never raises on bad input."""
    if data is None or len(data) == 0:
        return CleanedImage("image_missing")
    if _sniff_non_raster(data):
        return CleanedImage("image_unsupported", detail="vector or document format")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _clean(data, max_size, max_pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return CleanedImage("image_too_large", detail=str(exc)[:200])
    except MemoryError:
        return CleanedImage("image_too_large", detail="out of memory while decoding")
    except UnidentifiedImageError:
        try:  # a format Pillow knows but we do not accept, or nothing recognisable at all
            with Image.open(io.BytesIO(data)) as other:
                return CleanedImage("image_unsupported", detail=f"format {other.format}")
        except Exception:
            return CleanedImage("image_corrupt", detail="not a recognisable image")
    except Exception as exc:
        return CleanedImage("image_corrupt", detail=f"{type(exc).__name__}: {exc}"[:200])


def _clean(data: bytes, max_size: int, max_pixels: int) -> CleanedImage:
    img = _open(data)
    fmt = str(img.format)
    width, height = img.size
    if width <= 0 or height <= 0:
        return CleanedImage("image_corrupt", detail="zero-sized image")
    if width * height > max_pixels:
        return CleanedImage("image_too_large", detail=f"{width}x{height} exceeds {max_pixels} pixels")
    orientation = img.getexif().get(_ORIENTATION, 1) if fmt in (*_JPEG, "TIFF", "WEBP", "PNG") else 1
    frames = getattr(img, "n_frames", 1)
    resize = max(width, height) > max_size
    needs_change = img.mode != "RGB" or resize or orientation not in (1, None) or frames > 1
    if not needs_change:
        if fmt in _JPEG:
            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
        img.load()  # reads to the end: truncation raises here
        return CleanedImage(None, None, width, height, fmt)

    actions: list[str] = []
    if resize and fmt in _JPEG:
        img.draft("RGB", _target(width, height, max_size))  # decode at the smallest scale ≥ target
    img.load()
    if frames > 1:
        actions.append("first_frame")
    if orientation not in (1, None):
        img = ImageOps.exif_transpose(img)
        actions.append("exif_rotated")
    img, conversion = _to_rgb(img)
    if conversion:
        actions.append(conversion)
    if max(img.size) > max_size:
        img = img.resize(_target(*img.size, max_size), Image.Resampling.LANCZOS)
        actions.append("resized")
    out = io.BytesIO()
    if fmt in _JPEG:
        img.save(out, "JPEG", quality=95)
        new_fmt = "JPEG"
    else:
        img.save(out, "PNG")
        new_fmt = "PNG"
    actions.append(f"reencoded_{new_fmt.lower()}")
    return CleanedImage(None, out.getvalue(), img.width, img.height, new_fmt, actions)


def reference_clean(data: bytes, max_size: int = 2048) -> bytes:
    """The seed's way, for benchmarks only: decode, RGB, LANCZOS thumbnail, PNG, every image."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()
