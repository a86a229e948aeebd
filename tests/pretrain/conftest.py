"""Real shards from package-shipped images (skimage.data), written with the common shard writer, plus one bad jpg."""

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from common.schemas import SHARD_INDEX_SCHEMA
from common.shard_writer import ShardWriter
from pretrain.data.views import MultiCropConfig

IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "camera")
SIZES = ((120, 90), (96, 128), (80, 80), (150, 100))  # (W, H): portrait, landscape, square
SHARD_SIZES = (3, 3, 2, 3, 2)  # 5 shards over 4 streams (2 ranks x 2 workers): one stream gets two
CORRUPT_KEY = "s002-0001"
TINY_CROPS = MultiCropConfig(global_size=(64, 48), local_size=(32, 24), num_local=2)


def jpeg(name: str, size: tuple[int, int], quality: int = 90) -> bytes:
    image = Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB").resize(size)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_shards(out_dir: Path) -> list[str]:
    """Writes the shards; returns the keys of the samples that decode."""
    good, n = [], 0
    for shard_id, count in enumerate(SHARD_SIZES):
        with ShardWriter(out_dir=out_dir, shard_id=shard_id, index_schema=SHARD_INDEX_SCHEMA, image_ext="jpg") as w:
            for i in range(count):
                key = f"s{shard_id:03d}-{i:04d}"
                if key == CORRUPT_KEY:
                    data = jpeg("coffee", (64, 64))[:200]  # header only: truncated
                else:
                    data = jpeg(IMAGES[n % len(IMAGES)], SIZES[n % len(SIZES)])
                    good.append(key)
                n += 1
                w.write(key=key, files={"jpg": data, "json": {"key": key}}, index={"source": "skimage"})
    return good


@dataclass(frozen=True)
class ShardSet:
    dir: Path
    keys: list[str]  # samples that decode
    corrupt_key: str
    crops: MultiCropConfig


@pytest.fixture(scope="session")
def shard_set(tmp_path_factory: pytest.TempPathFactory) -> ShardSet:
    out = tmp_path_factory.mktemp("pretrain-shards")
    return ShardSet(out, write_shards(out), CORRUPT_KEY, TINY_CROPS)
