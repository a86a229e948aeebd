"""Images of a batch as decoded RGB pixels, for stages that need them. Each such stage decodes again: a JPEG
decode costs far less than shipping raw pixels between Ray workers."""

import pyarrow as pa
from PIL import Image

from common.image_decode import DecodeConfig, decode_image

IMAGE = "image"


def decode_batch(batch: pa.Table, config: DecodeConfig) -> list[Image.Image]:
    """Upright RGB images of rows the decode stage kept; a row it would reject here is a contract violation."""
    images = []
    for key, data in zip(batch["key"].to_pylist(), batch[IMAGE].to_pylist(), strict=True):
        decoded = decode_image(data, config)
        if decoded.image is None:
            raise ValueError(f"row {key} reached a pixel stage but does not decode ({decoded.reason})")
        images.append(decoded.image)
    return images
