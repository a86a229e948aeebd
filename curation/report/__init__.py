"""The curation stats report: `build_report(run_dir)` writes run_dir/report/ (index.html, stats.json, PNG plots)
from whatever the score, select and write phases have produced so far."""

from curation.report.build import build_report
from curation.report.config import NoPhaseOutputError, ReportConfig, ReportResult

__all__ = ["NoPhaseOutputError", "ReportConfig", "ReportResult", "build_report"]
