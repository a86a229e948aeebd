"""Settings of the stats report and what a build returns; the names of the run files the report reads."""

from dataclasses import dataclass, field
from pathlib import Path

REPORT_DIR = "report"
HTML_NAME = "index.html"
STATS_NAME = "stats.json"

# Inputs in the run directory, as the curation phases write them (DESIGN.md "Data flow").
RUN_CONFIG = "config.yaml"
SCORE_STATS = "stats.json"
CANDIDATES_GLOB = "candidates/part-*.parquet"
SELECT_STATS = "select_stats.json"
SELECT_REJECTED = "select/rejected.parquet"
SELECTION = "selection.parquet"
MANIFEST = "manifest.json"


@dataclass
class ReportConfig:
    top_clusters: int = 8  # top-level clusters shown as thumbnail grids, largest first
    thumbs_per_cluster: int = 16
    thumb_size: int = 96  # px, square tiles
    dup_examples: int = 6  # removed/kept pairs shown per dedup method
    seed: int = 0  # which rows the thumbnails and dup examples show

    def __post_init__(self) -> None:
        for name in ("top_clusters", "thumbs_per_cluster", "dup_examples", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"ReportConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.thumb_size < 8:
            raise ValueError(f"ReportConfig.thumb_size must be >= 8 px, got {self.thumb_size}")


@dataclass(frozen=True)
class ReportResult:
    html: Path  # report/index.html, self-contained
    stats: Path  # report/stats.json, every number the html shows
    plots: list[Path] = field(default_factory=list)  # every PNG, also embedded in the html


class NoPhaseOutputError(FileNotFoundError):
    """The run directory holds none of the files a curation phase writes."""
