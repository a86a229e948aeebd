"""Typed config of the write phase: the `write` section of a curation config."""

from dataclasses import dataclass


@dataclass
class WriteConfig:
    shard_size: int = 10_000  # samples per shard, img2dataset's default; every shard but the last is full
    jpeg_quality: int = 95  # only for images that must be re-encoded (not JPEG, or EXIF-rotated JPEG)
    num_cpus: float = 1.0  # per shard task on Ray

    def __post_init__(self) -> None:
        if not isinstance(self.shard_size, int) or self.shard_size < 1:
            raise ValueError(f"write.shard_size must be a positive integer, got {self.shard_size!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"write.jpeg_quality must be in 1..100, got {self.jpeg_quality!r}")
