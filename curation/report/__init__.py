"""The curation stats report: `build_report(run_dir)` writes run_dir/report/ (index.html, stats.json, PNG plots)
from whatever the score, select and write phases have produced so far."""

from pathlib import Path

from curation.report.config import NoPhaseOutputError, ReportConfig, ReportResult

__all__ = ["NoPhaseOutputError", "ReportConfig", "ReportResult", "build_report"]


def build_report(run_dir: Path, *, config: ReportConfig | None = None) -> ReportResult:
    """See curation.report.build.build_report."""
    # matplotlib loads only when a report is drawn: its import writes a font cache under HOME, and every `humans1b`
    # command (ray-local included) imports this package through the curation config.
    from curation.report.build import build_report as build

    return build(run_dir, config=config)
