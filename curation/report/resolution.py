"""Section 3b: image resolution, width x height as a hexbin and the short side against the decode minimum."""

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from curation.report.histograms import threshold_histogram
from curation.report.inputs import RunInputs
from curation.report.numbers import summarize
from curation.report.plotting import REJECT_COLOR, new_figure, no_data, save_figure
from curation.report.thresholds import threshold_stats


def _sizes(inputs: RunInputs) -> tuple[np.ndarray, np.ndarray]:
    """Width and height of every candidate whose header was read (both known)."""
    table = inputs.candidates
    if table is None or table.num_rows == 0:
        return np.zeros(0), np.zeros(0)
    known = table.filter(pc.and_(pc.is_valid(table["width"]), pc.is_valid(table["height"])))
    w = known["width"].to_numpy().astype(np.float64)
    h = known["height"].to_numpy().astype(np.float64)
    return w, h


def resolution_section(inputs: RunInputs, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    width, height = _sizes(inputs)
    short = np.minimum(width, height)
    stats = {
        "count": int(width.size),
        "width": summarize(width),
        "height": summarize(height),
        "short_side": summarize(short) | threshold_stats("short_side", inputs.run_config, short),
    }
    fig = new_figure((11.0, 4.5))
    left, right = fig.subplots(1, 2)
    left.set_title(f"Width x height (n = {width.size:,})")
    if width.size:
        hb = left.hexbin(width, height, gridsize=30, bins="log", mincnt=1, cmap="viridis")
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
