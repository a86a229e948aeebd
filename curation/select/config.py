"""Typed config of the select phase: the `select` section of a curation config."""

from dataclasses import dataclass, field

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
