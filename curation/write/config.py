"""Typed config of the write phase: the `write` section of a curation config."""

from dataclasses import dataclass

from common.config import bounded, check_ranges


@dataclass
class WriteConfig:
    shard_size: int = bounded(10_000, ge=1)  # samples per shard, img2dataset's default; all but the last are full
    jpeg_quality: int = bounded(95, ge=1, le=100)  # only for images that must be re-encoded (not JPEG, or rotated)
    num_cpus: float = bounded(1.0, gt=0)  # per shard task on Ray

    def __post_init__(self) -> None:
        check_ranges(self)
