"""Images of a batch as decoded RGB pixels, for stages that need them.

Stages run back to back in one process on one batch (`curation.score.stage_groups`) share their decodes: inside
`shared_decodes()` the first stage to decode a row (the decode stage, which validates it) keeps the result and every
later stage of the same call reuses it, so an image is decoded once per group instead of once per stage. The scope
holds one batch's images, which each stage held anyway while it ran. Outside a scope every call decodes, as a stage
called on its own (benchmarks, tests) always did. Pixels never travel between Ray workers: a JPEG decode costs far
less than shipping raw pixels.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import pyarrow as pa
from PIL import Image

from common.image_decode import DecodeConfig, DecodedImage, decode_image

IMAGE = "image"

# key -> (the bytes decoded, config, result) of the current scope; None outside any scope
_SHARED: ContextVar[dict[str, tuple[bytes, DecodeConfig, DecodedImage]] | None] = ContextVar("shared", default=None)


@contextmanager
def shared_decodes() -> Iterator[None]:
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def decode_row(key: str, data: bytes, config: DecodeConfig) -> DecodedImage:
    """decode_image(data, config), once per key, bytes and config within a `shared_decodes()` scope."""
    cache = _SHARED.get()
    if cache is None:
        return decode_image(data, config)
    hit = cache.get(key)
    if hit is not None and hit[1] == config and hit[0] == data:  # a memcmp: the same key with other bytes decodes
        return hit[2]
    decoded = decode_image(data, config)
    cache[key] = (data, config, decoded)
    return decoded


def decode_batch(batch: pa.Table, config: DecodeConfig) -> list[Image.Image]:
    """Upright RGB images of rows the decode stage kept; a row it would reject here is a contract violation."""
    images = []
    for key, data in zip(batch["key"].to_pylist(), batch[IMAGE].to_pylist(), strict=True):
        decoded = decode_row(key, data, config)
        if decoded.image is None:
            raise ValueError(f"row {key} reached a pixel stage but does not decode ({decoded.reason})")
        images.append(decoded.image)
    return images
