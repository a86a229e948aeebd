"""The bytes a shard stores for an image: the original JPEG when it can be used as is, else a re-encoded JPEG.

A JPEG with an EXIF orientation other than 1 is re-encoded upright too: the stored boxes are in upright pixel
coordinates, and a reader that ignores EXIF (most training loaders) would otherwise see them misplaced.
"""

import io

from PIL import ExifTags, Image

from common.image_decode import DecodeConfig, decode_image

_JPEG_MAGIC = b"\xff\xd8\xff"


def _usable_as_is(data: bytes) -> bool:
    if not data.startswith(_JPEG_MAGIC):
        return False
    try:
        with Image.open(io.BytesIO(data)) as im:  # header only
            return im.format == "JPEG" and im.getexif().get(ExifTags.Base.Orientation, 1) == 1
    except (OSError, ValueError, SyntaxError):
        return False


def shard_jpeg(data: bytes, *, quality: int, decode: DecodeConfig) -> tuple[bytes | None, str | None, bool]:
    """(jpeg bytes, reject reason, re-encoded?): the reason is set, and the bytes are None, when decode fails."""
    if _usable_as_is(data):
        return data, None, False
    decoded = decode_image(data, decode)
    if decoded.image is None:
        return None, decoded.reason, False
    buf = io.BytesIO()
    decoded.image.save(buf, format="JPEG", quality=quality)  # no optimize/progressive: stable bytes across runs
    return buf.getvalue(), None, True
