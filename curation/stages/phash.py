"""Stage 2: 64-bit perceptual hash (imagehash.phash), stored as uint64 for the dedup phase."""

from typing import ClassVar

import imagehash
import pyarrow as pa

from common.image_decode import DecodeConfig
from curation.stages.base import Stage, StageResources, StageResult
from curation.stages.pixels import decode_batch

HASH_SIZE = 8  # 8 x 8 DCT bits = 64: the phash of the literature and of imagehash's default


def phash_uint64(image) -> int:
    bits = imagehash.phash(image, hash_size=HASH_SIZE).hash.flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


class PhashStage(Stage):
    name = "phash"
    fields: ClassVar[list[pa.Field]] = [pa.field("phash", pa.uint64())]
    reasons: ClassVar[tuple[str, ...]] = ()

    def __init__(self, decode: DecodeConfig, resources: StageResources | None = None) -> None:
        super().__init__(resources)
        self.decode = decode

    def process(self, batch: pa.Table) -> StageResult:
        return StageResult(columns={"phash": [phash_uint64(im) for im in decode_batch(batch, self.decode)]})
