"""Decode and validate one image from its bytes: RGB, upright, or a named reject reason (never an exception)."""

import io
import logging
import struct
from dataclasses import dataclass

import numpy as np
from pi_heif import register_heif_opener
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from common.config import bounded
from common.reasons import RejectReason

logger = logging.getLogger(__name__)

# HEIC/HEIF (phone photos) decode like any other format. Registered here rather than left to chance: ultralytics
# patches Image.open to register this plugin on the first unidentified file (pip-installing it if missing), so
# without it a process's results would depend on whether ultralytics was imported there.
register_heif_opener()

# Pillow refuses images over 2 x Image.MAX_IMAGE_PIXELS with an error and warns above it. The warning is raised only
# when the process turns warnings into errors: filtering warnings here would change state shared by every thread.
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
# What Pillow's plugins raise on bad data (OSError covers the decoders and truncation, SyntaxError broken headers,
# struct.error short header fields, EOFError frames that end early).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


@dataclass
class DecodeConfig:
    min_short_side: int = bounded(384, ge=0)  # Sapiens2 keeps images whose short side is >= 384 px
    # Pillow's own DecompressionBombWarning threshold (Image.MAX_IMAGE_PIXELS)
    max_pixels: int = bounded(89_478_485, gt=0)
    max_aspect_ratio: float = bounded(4.0, ge=1)  # long side / short side


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image | None  # RGB, EXIF orientation applied; None when rejected
    width: int | None  # after orientation; known once the header was read (rejected files included)
    height: int | None
    format: str | None  # Pillow format name, e.g. "JPEG"
    reason: str | None  # None = valid, else a RejectReason value


def decode_image(data: bytes, config: DecodeConfig | None = None) -> DecodedImage:
    """Decode `data` into an upright RGB image, or return why it is rejected.

    Size rules are checked on the header before any pixel is decoded, so a decompression bomb costs a header read.
    """
    config = config or DecodeConfig()
    if not data:
        return _reject(RejectReason.EMPTY_FILE)
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:  # subclass of OSError: must come first
        return _reject(RejectReason.NOT_AN_IMAGE)
    except _BOMB_ERRORS:  # over 2 x Image.MAX_IMAGE_PIXELS: Pillow refuses the header, its size is not exposed
        return _reject(RejectReason.TOO_LARGE)
    except _DECODE_ERRORS as e:
        return _reject(_failure_reason(e))
    with im:  # releases Pillow's hold on the buffer; the returned image is a separate copy
        return _decode_opened(im, config)


def _decode_opened(im: Image.Image, config: DecodeConfig) -> DecodedImage:
    fmt = im.format
    try:
        width, height = _oriented_size(im.size, _header_orientation(im))
    except _DECODE_ERRORS as e:  # a broken EXIF block
        return _reject(_failure_reason(e), fmt=fmt)
    size_reason = _size_reason(width, height, config)
    if size_reason is not None:
        return _reject(size_reason, width, height, fmt)

    try:
        im.load()  # first frame of an animation
        upright = ImageOps.exif_transpose(im)  # always a new image, detached from the input buffer
        rgb = _to_rgb(upright)
    except _BOMB_ERRORS:  # a GIF frame larger than its header says
        return _reject(RejectReason.TOO_LARGE, width, height, fmt)
    except _DECODE_ERRORS as e:
        return _reject(_failure_reason(e), width, height, fmt)
    # The decoded size is authoritative: a PNG may carry its EXIF orientation after the pixel data.
    return DecodedImage(image=rgb, width=rgb.width, height=rgb.height, format=fmt, reason=None)


def _reject(
    reason: RejectReason, width: int | None = None, height: int | None = None, fmt: str | None = None
) -> DecodedImage:
    return DecodedImage(image=None, width=width, height=height, format=fmt, reason=reason.value)


def _failure_reason(error: Exception) -> RejectReason:
    # Pillow has no exception class for truncation; its messages are "image file is truncated (...)" from
    # ImageFile.load and "Truncated File Read" from ImageFile._safe_read.
    if isinstance(error, EOFError) or (isinstance(error, OSError) and "truncated" in str(error).lower()):
        return RejectReason.TRUNCATED
    logger.debug("decode error: %r", error)
    return RejectReason.DECODE_ERROR


def _header_orientation(im: Image.Image) -> int:
    # PngImageFile.getexif() decodes the whole image when no eXIf chunk precedes the pixel data: skip it here.
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    return orientation if isinstance(orientation, int) else 1


def _oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = size
    return (height, width) if orientation in _ROTATED_ORIENTATIONS else (width, height)


def _size_reason(width: int, height: int, config: DecodeConfig) -> RejectReason | None:
    short, long = min(width, height), max(width, height)
    if width * height > config.max_pixels:
        return RejectReason.TOO_LARGE
    if short < config.min_short_side or short == 0:
        return RejectReason.TOO_SMALL
    if long / short > config.max_aspect_ratio:
        return RejectReason.BAD_ASPECT_RATIO
    return None


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode.startswith("I;16") or im.mode == "I":
        # Pillow's convert("L"/"RGB") clips these to 255 instead of scaling. Both hold 16-bit samples (PNG, TIFF;
        # 32-bit values beyond clip): 8-bit v is stored as 257 v, so round(x / 257), i.e. (2x + 257) // 514, inverts it.
        values = np.clip(np.asarray(im), 0, 65535).astype(np.uint32)
        return _gray_to_rgb((2 * values + 257) // 514)
    if im.mode == "F":
        # Float images carry no range: read [0, 1] data as unit intensities, anything else as 8-bit values.
        values = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            values = values * 255.0
        return _gray_to_rgb(np.rint(values))
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        # Transparent pixels often hold black RGB: composite onto white, as a browser shows them on a page.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode == "RGB":
        return im
    return im.convert("RGB")  # 1, L, P, CMYK, YCbCr, HSV, ...


def _gray_to_rgb(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).convert("RGB")
