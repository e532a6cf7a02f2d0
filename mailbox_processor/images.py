"""Photos rebuilt from their pixels: no EXIF, GPS, XMP, ICC, comments or thumbnails.

A plain Pillow re-save keeps the JPEG comment and the PNG ICC profile, and
EXIF carries the phone's make, model, serial number and the GPS position. So
the image is decoded, turned upright, downscaled, copied pixel by pixel into
a fresh image that has no `info` at all, and only that is encoded.
"""

from __future__ import annotations

import io
import logging
import warnings

from PIL import Image as PILImage
from PIL import ImageOps

from .models import Image

log = logging.getLogger(__name__)

# Pillow's EXIF reader logs every tag it reads at DEBUG — camera serial number,
# GPS position. A level on the library's logger stops those records from being
# made at all (a handler trick would not: any handler attached to "PIL" sees them).
logging.getLogger("PIL").setLevel(logging.WARNING)

MAX_SIDE = 2048
# Pillow's decompression-bomb guard, set explicitly rather than trusting the
# library default: 60 Mpx covers phone cameras (200 Mpx sensors save binned 50 Mpx photos).
MAX_PIXELS = 60_000_000
PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS
# Only these decoders ever see citizen bytes; Pillow has many more, each an attack surface.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "HEIF")  # JPEG also opens MPO (iPhone)
JPEG_QUALITY = 85


# What Pillow's decoders raise on hostile or truncated files (each plugin differs).
DECODE_ERRORS = (
    PILImage.DecompressionBombError, PILImage.DecompressionBombWarning, OSError, ValueError,
    SyntaxError, EOFError, MemoryError, TypeError, IndexError, KeyError, ZeroDivisionError,
)


class Unreadable(Exception):
    """The bytes are not an image we accept, or decoding them failed."""


def scrub(data: bytes, number: int) -> Image:
    """The photo as a fresh JPEG (or PNG when it has transparency) named anh-N.*."""
    _register_heif()
    try:
        with warnings.catch_warnings():
            # Between MAX_PIXELS and twice that Pillow only warns: make it refuse.
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data), formats=FORMATS)
        with img:
            if img.width * img.height > MAX_PIXELS:
                raise Unreadable("too many pixels")
            img.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale, faster
            img.seek(0)  # animated GIF/WebP: the first frame is enough
            img.load()
            fresh = _rebuild(_upright(img))
    except Unreadable:
        raise
    except DECODE_ERRORS as e:
        raise Unreadable(type(e).__name__) from None
    return _encode(fresh, number)


def _upright(img: PILImage.Image) -> PILImage.Image:
    """Apply the EXIF orientation (the pixels must look right once the tag is gone)."""
    try:
        turned = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block: keep the pixels as stored
        turned = None
    return turned if turned is not None else img


def _has_alpha(img: PILImage.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (
        img.mode == "P" and "transparency" in img.info
    )


def _rebuild(img: PILImage.Image) -> PILImage.Image:
    """A new image holding only pixels: frombytes gives it an empty `info`."""
    mode = "RGBA" if _has_alpha(img) else "RGB"
    pixels = img.convert(mode)
    pixels.thumbnail((MAX_SIDE, MAX_SIDE), PILImage.Resampling.LANCZOS)
    return PILImage.frombytes(mode, pixels.size, pixels.tobytes())


def _encode(img: PILImage.Image, number: int) -> Image:
    out = io.BytesIO()
    if img.mode == "RGBA":
        img.save(out, format="PNG", optimize=True)
        name, ctype = f"anh-{number}.png", "image/png"
    else:
        img.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        name, ctype = f"anh-{number}.jpg", "image/jpeg"
    return Image(name=name, content_type=ctype, data=out.getvalue(),
                 width=img.width, height=img.height)


_heif_registered = False


def _register_heif() -> None:
    """iPhones send HEIC; pillow-heif adds the decoder. Without it HEIC is withheld, not fatal."""
    global _heif_registered
    if _heif_registered:
        return
    _heif_registered = True
    try:
        import pillow_heif
    except ImportError:
        log.warning("pillow-heif is not installed: HEIC photos will be withheld")
        return
    try:
        pillow_heif.register_heif_opener()
    except Exception as e:
        log.warning("pillow-heif could not be registered (%s): HEIC photos withheld",
                    type(e).__name__)
