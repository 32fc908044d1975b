"""Images for the model: EXIF orientation, short side ≥ 32, long side ≤ 2048, RGB JPEG q90, data URL."""

from __future__ import annotations

import base64
import io
import math
import warnings

from PIL import Image, ImageOps

SHORT_MIN = 32
LONG_MAX = 2048


def scale_factor(width: int, height: int, short_min: int = SHORT_MIN, long_max: int = LONG_MAX) -> float:
    """Upscale tiny images, downscale huge ones; when both apply, the long side limit wins."""
    short, long = min(width, height), max(width, height)
    up = short_min / short if short < short_min else 1.0
    down = long_max / long if long > long_max else 1.0
    if up > 1.0 and down < 1.0:
        return down
    return up if up > 1.0 else down


def model_jpeg(data: bytes) -> bytes:
    """The bytes sent to a model for one image (raises on an unreadable image)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img)
            f = scale_factor(*img.size)
            if f != 1.0:
                size = (max(1, math.ceil(img.width * f)), max(1, math.ceil(img.height * f)))
                img = img.resize(size, Image.Resampling.BICUBIC)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                bg = Image.new("RGB", rgba.size, (255, 255, 255))
                bg.paste(rgba, mask=rgba.getchannel("A"))
                img = bg
            elif img.mode != "RGB":
                img = img.convert("RGB")
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90)
            return buf.getvalue()


def image_data_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(model_jpeg(data)).decode("ascii")
