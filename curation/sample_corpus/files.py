"""One file of the sample corpus, what the decoder is expected to make of it, and small helpers to build files."""

import io
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from common.image_decode import DecodeConfig
from common.reasons import RejectReason

# Kinds of files; originals and near-duplicates are ordinary photos, every other kind is one odd case.
ORIGINAL = "original"
NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True)
class CorpusFile:
    path: str  # relative to images/, e.g. "near_duplicates/bus/jpeg_q30.jpg"; without its extension, the name
    kind: str
    data: bytes = field(repr=False)
    origin: str | None  # the original it derives from
    expected_reason: str | None  # what decode_image with the default DecodeConfig returns; None = valid
    width: int | None  # expected size after orientation; None where the decoder cannot know it
    height: int | None

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[0]

    @property
    def ext(self) -> str:
        return self.path.rsplit(".", 1)[1]


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """An independent stream per purpose, so adding one kind of file does not change the others."""
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def expected_size_reason(width: int, height: int) -> str | None:
    """The size rules of the default DecodeConfig, restated so the corpus checks the decoder instead of reusing it."""
    config = DecodeConfig()
    short, long = min(width, height), max(width, height)
    if width * height > config.max_pixels:
        return RejectReason.TOO_LARGE.value
    if short < config.min_short_side:
        return RejectReason.TOO_SMALL.value
    if long / short > config.max_aspect_ratio:
        return RejectReason.BAD_ASPECT_RATIO.value
    return None


def photo_file(path: str, kind: str, data: bytes, origin: str, size: tuple[int, int]) -> CorpusFile:
    """A readable, upright image whose expected outcome follows from its size alone."""
    width, height = size
    return CorpusFile(path, kind, data, origin, expected_size_reason(width, height), width, height)
