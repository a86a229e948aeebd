"""Files a web crawl returns that are not usable images, each with the reason the decoder must give."""

import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from common.reasons import RejectReason
from curation.sample_corpus.files import CorpusFile, encode
from curation.sample_corpus.sources import Original

BOMB_SIDE = 20_000  # 400 M pixels, over twice Pillow's limit, in a PNG of about 50 kB
BANNER_SIZE = (2000, 400)  # long / short = 5 > the default max aspect ratio of 4, short side still >= 384
NOT_FOUND_PAGE = b"""<!DOCTYPE html>
<html><head><title>404 Not Found</title></head>
<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>
"""


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def decompression_bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit black PNG of side x side pixels, compressed row by row: the image never exists in memory."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte "none" + packed bits
    compressor = zlib.compressobj(9)
    rows_per_chunk = 256
    idat = [compressor.compress(row * min(rows_per_chunk, side - start)) for start in range(0, side, rows_per_chunk)]
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale, deflate, no interlace
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", b"".join(idat)),
            _png_chunk(b"IEND", b""),
        ]
    )


def corrupt_png(image: Image.Image) -> bytes:
    """A PNG whose pixel stream does not inflate (bad zlib header), with chunk CRCs intact as a broken server sends."""
    data = encode(image, "PNG")
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start : start + 4])[0]
    payload = b"\x78\x00" + data[start + 10 : start + 8 + length]  # (0x78 << 8 | 0x00) % 31 != 0: invalid header
    return data[:start] + _png_chunk(b"IDAT", payload) + data[start + 12 + length :]


def _file(
    kind: str,
    ext: str,
    data: bytes,
    reason: RejectReason,
    origin: str | None = None,
    size: tuple[int, int] | None = None,
) -> CorpusFile:
    width, height = size or (None, None)
    return CorpusFile(f"malformed/{kind}.{ext}", kind, data, origin, reason.value, width, height)


def malformed_files(originals: dict[str, Original], rng: Callable[[str], np.random.Generator]) -> list[CorpusFile]:
    hopper = originals["grace_hopper"].data
    hopper_size = (originals["grace_hopper"].width, originals["grace_hopper"].height)  # the header survives the cut
    cut = int(len(hopper) * rng("truncated_jpeg").uniform(0.3, 0.7))  # past the header, well before the end

    zidane = originals["zidane"].load()
    strip_height = round(zidane.width * BANNER_SIZE[1] / BANNER_SIZE[0])
    top = int(rng("extreme_aspect_ratio").integers(0, zidane.height - strip_height + 1))
    banner = zidane.crop((0, top, zidane.width, top + strip_height)).resize(BANNER_SIZE, Image.Resampling.BICUBIC)

    coffee = originals["coffee"].load()
    tracking_pixel = encode(Image.new("P", (1, 1), 0), "GIF", transparency=0)
    return [
        _file("empty_file", "jpg", b"", RejectReason.EMPTY_FILE),
        _file("truncated_jpeg", "jpg", hopper[:cut], RejectReason.TRUNCATED, "grace_hopper", hopper_size),
        _file("text_as_jpg", "jpg", NOT_FOUND_PAGE, RejectReason.NOT_AN_IMAGE),
        # Pillow refuses this header outright, so the decoder cannot report the size.
        _file("decompression_bomb_png", "png", decompression_bomb_png(), RejectReason.TOO_LARGE),
        _file("corrupt_png", "png", corrupt_png(coffee), RejectReason.DECODE_ERROR, "coffee", coffee.size),
        _file("one_pixel", "gif", tracking_pixel, RejectReason.TOO_SMALL, size=(1, 1)),
        _file(
            "extreme_aspect_ratio",
            "jpg",
            encode(banner, "JPEG", quality=90),
            RejectReason.BAD_ASPECT_RATIO,
            "zidane",
            BANNER_SIZE,
        ),
    ]
