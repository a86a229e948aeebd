"""Section 3b: image resolution, width x height as a hexbin and the short side against the decode minimum."""

from pathlib import Path

from omegaconf import DictConfig

from curation.report.candidate_scan import CandidateScan
from curation.report.histograms import threshold_histogram
from curation.report.plotting import REJECT_COLOR, new_figure, no_data, save_figure
from curation.report.thresholds import threshold_stats


def resolution_section(
    scan: CandidateScan, run_config: DictConfig | None, out_dir: Path
) -> tuple[dict, dict[str, Path]]:
    """Over the candidates whose width and height are both known."""
    width, short = scan.columns["width"], scan.columns["short_side"]
    stats = {
        "count": width.count,
        "width": width.summary(),
        "height": scan.columns["height"].summary(),
        "short_side": threshold_stats("short_side", run_config, short),
    }
    fig = new_figure((11.0, 4.5))
    left, right = fig.subplots(1, 2)
    left.set_title(f"Width x height (n = {width.count:,})")
    if scan.sizes is not None:
        hb = scan.sizes.draw(left, bins="log", cmap="viridis")
        fig.colorbar(hb, ax=left, label="rows (log)")
        t = stats["short_side"]["threshold"]
        left.axvline(t, color=REJECT_COLOR, linestyle="--", linewidth=1)
        left.axhline(t, color=REJECT_COLOR, linestyle="--", linewidth=1)
        left.set_xlabel("width (px)")
        left.set_ylabel("height (px)")
    else:
        no_data(left)
    right.set_title("Short side")
    threshold_histogram(right, short, stats["short_side"], "px")
    return stats, {"resolution": save_figure(fig, out_dir / "resolution.png")}
