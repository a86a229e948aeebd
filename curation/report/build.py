"""build_report: read what the phases wrote, compute every number into one dict, draw the plots, and render the
page from that dict. Each section is drawn only when its inputs exist; the others say which phase is missing."""

import json
import logging
from pathlib import Path

from curation.report.candidate_scan import scan_candidates
from curation.report.cluster_grid import cluster_grid_stats, draw_cluster_grids
from curation.report.cluster_sizes import cluster_stats, draw_cluster_sizes
from curation.report.config import HTML_NAME, REPORT_DIR, STATS_NAME, NoPhaseOutputError, ReportConfig, ReportResult
from curation.report.duplicates import (
    DUP_METHODS,
    draw_duplicate_counts,
    draw_pairs,
    duplicate_counts,
    scan_rejected,
)
from curation.report.funnel import draw_funnel, draw_rejections, funnel_rows
from curation.report.head_pose import head_pose_section
from curation.report.html_page import render_html
from curation.report.inputs import RunInputs, load_run_inputs
from curation.report.numbers import clean
from curation.report.resolution import resolution_section
from curation.report.scores import person_section, score_section
from curation.report.selection_scan import scan_selection
from curation.report.thumbnails import load_thumbnails

log = logging.getLogger(__name__)

EXPECTED = (
    "stats.json or candidates/part-*.parquet (score), select_stats.json or selection.parquet (select), "
    "manifest.json (write)"
)


def build_report(run_dir: Path, *, config: ReportConfig | None = None) -> ReportResult:
    """Write run_dir/report/: index.html (self-contained), stats.json (every number it shows) and the PNG plots."""
    config = config or ReportConfig()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NoPhaseOutputError(f"{run_dir} is not a directory: pass the output directory of a curation run")
    inputs = load_run_inputs(run_dir)
    if not inputs.phases:
        raise NoPhaseOutputError(
            f"{run_dir} holds no curation output (expected at least one of {EXPECTED}): pass the output directory "
            "of a curation run, or run a phase into it first (humans1b curate score ...)"
        )
    out_dir = run_dir / REPORT_DIR
    out_dir.mkdir(exist_ok=True)

    stats, plots = _compute_and_draw(inputs, config, out_dir)
    stats["plots"] = {name: path.name for name, path in plots.items()}
    text = json.dumps(clean(stats), indent=2) + "\n"
    stats_path = out_dir / STATS_NAME
    stats_path.write_text(text)
    _remove_stale_plots(out_dir, plots)

    images = {name: path.read_bytes() for name, path in plots.items()}
    html_path = out_dir / HTML_NAME
    html_path.write_text(render_html(json.loads(text), images), encoding="utf-8")
    log.info("report: %s (%d plots)", html_path, len(plots))
    return ReportResult(html=html_path, stats=stats_path, plots=list(plots.values()))


def _compute_and_draw(inputs: RunInputs, config: ReportConfig, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    stats: dict = {"run_dir": str(inputs.run_dir), "phases": inputs.phases}
    plots: dict[str, Path] = {}

    stats["funnel"] = funnel_rows(inputs)
    if stats["funnel"]:
        plots["funnel"] = draw_funnel(stats["funnel"], out_dir / "funnel.png")
        plots["rejections"] = draw_rejections(stats["funnel"], out_dir / "rejections.png")
    log.info("report: funnel of %d steps", len(stats["funnel"]))

    # The parquet outputs, each read batch by batch: rejected and selection first, so the candidate passes know
    # which keys the duplicate pairs show.
    rejected = scan_rejected(inputs, config) if inputs.select_rejected is not None else None
    counts = duplicate_counts(inputs.select_stats, rejected)
    chosen_pairs = rejected.pairs if rejected is not None else {m: [] for m in DUP_METHODS}  # none to show
    pairs = {m: p for m, p in chosen_pairs.items() if m in (counts or {})}
    selection = scan_selection(inputs, config)
    picks = selection.picks if selection is not None else []
    wanted = {key for chosen in pairs.values() for pair in chosen for key in pair}
    candidates = scan_candidates(inputs, wanted) if inputs.candidate_files else None

    stats["scores"] = stats["person_short_side"] = stats["resolution"] = stats["head_pose"] = None
    if candidates is not None:
        for key, section in (("scores", score_section), ("person_short_side", person_section)):
            stats[key], drawn = section(candidates, inputs.run_config, out_dir)
            plots |= drawn
        stats["resolution"], drawn = resolution_section(candidates, inputs.run_config, out_dir)
        plots |= drawn
    if candidates is not None or selection is not None:
        stats["head_pose"], drawn = head_pose_section(
            candidates.kept_yaw if candidates else None, selection.yaw if selection else None, out_dir
        )
        plots |= drawn
    log.info("report: score distributions %s", "drawn" if candidates is not None else "not run yet")

    locations = inputs.candidate_locations(candidates.found) if candidates is not None else {}
    wanted_tiles = [*locations.values(), *(loc for p in picks for loc in p["locations"])]
    tiles = load_thumbnails(wanted_tiles, config.thumb_size)  # one read-back pass for every thumbnail of the report

    stats["duplicates"] = counts
    stats["duplicate_examples"] = {m: [{"removed": a, "kept": b} for a, b in p] for m, p in pairs.items()}
    if counts is not None:
        plots["duplicates"] = draw_duplicate_counts(counts, out_dir / "duplicates.png")
        plots |= draw_pairs(pairs, locations, tiles, config.thumb_size, out_dir)

    stats["clusters"] = cluster_stats(inputs.select_stats) if inputs.select_stats is not None else None
    if stats["clusters"] is not None:
        plots["cluster_sizes"] = draw_cluster_sizes(inputs.select_stats, out_dir / "cluster_sizes.png")
    stats["top_clusters"] = cluster_grid_stats(picks) if selection is not None else None
    plots |= draw_cluster_grids(picks, tiles, config.thumb_size, out_dir)
    log.info("report: select sections %s", "drawn" if "select" in inputs.phases else "not run yet")

    stats["written"] = _written(inputs.manifest)
    return stats, plots


def _written(manifest: dict | None) -> dict | None:
    if manifest is None:
        return None
    return {
        "shards": len(manifest.get("shards") or []),
        "samples": manifest["samples"],
        "failed": len(manifest.get("failed") or []),
        "config_hash": manifest.get("config_hash"),
    }


def _remove_stale_plots(out_dir: Path, plots: dict[str, Path]) -> None:
    """PNGs of an earlier report that this one did not draw (e.g. fewer clusters now) would mislead: remove them."""
    current = {path.name for path in plots.values()}
    for path in out_dir.glob("*.png"):
        if path.name not in current:
            log.info("report: removing stale plot %s", path)
            path.unlink()
