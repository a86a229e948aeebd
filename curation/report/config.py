"""Settings of the stats report and what a build returns; the names of the run files the report reads."""

from dataclasses import dataclass, field
from pathlib import Path

from common.config import bounded, check_ranges
from common.errors import UsageError

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
    top_clusters: int = bounded(8, ge=0)  # top-level clusters shown as thumbnail grids, largest first
    thumbs_per_cluster: int = bounded(16, ge=0)
    thumb_size: int = bounded(96, ge=8)  # px, square tiles
    dup_examples: int = bounded(6, ge=0)  # removed/kept pairs shown per dedup method
    seed: int = bounded(0, ge=0)  # which rows the thumbnails and dup examples show

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class ReportResult:
    html: Path  # report/index.html, self-contained
    stats: Path  # report/stats.json, every number the html shows
    plots: list[Path] = field(default_factory=list)  # every PNG, also embedded in the html


class NoPhaseOutputError(UsageError, FileNotFoundError):
    """The run directory holds none of the files a curation phase writes: the wrong directory was given."""
