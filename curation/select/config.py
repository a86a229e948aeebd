"""Typed config of the select phase: the `select` section of a curation config."""

from dataclasses import dataclass, field

from common.config import bounded, check_ranges
from curation.select.balanced_sampling import SamplingConfig
from curation.select.hierarchical_kmeans import HierarchyConfig
from curation.select.phash_dedup import PhashDedupConfig
from curation.select.semdedup import SemDedupConfig


@dataclass
class SelectConfig:
    phash: PhashDedupConfig = field(default_factory=PhashDedupConfig)
    semdedup: SemDedupConfig = field(default_factory=SemDedupConfig)
    clusters: HierarchyConfig = field(default_factory=HierarchyConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    # Working memory per select task, GiB: sets how many partitions phash dedup and SemDeDup cut the rows into (the
    # results do not depend on it). Clustering's coordinating task also holds 16 B per row and the fit sample
    memory_gib: float = bounded(4.0, gt=0)
    # GPUs each k-means task (sample fits, assignment, Lloyd steps, SemDeDup's assignment) asks Ray for; faiss moves
    # its indexes to them when built with GPU support. 0 keeps k-means on CPU; 0.25 lets four tasks share a GPU
    task_gpus: float = bounded(0.0, ge=0)

    def __post_init__(self) -> None:
        check_ranges(self)
