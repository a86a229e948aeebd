"""A histogram with its threshold drawn, the rows beyond it counted in the legend."""

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes

from curation.report.plotting import KEPT_COLOR, REJECT_COLOR, new_figure, no_data, save_figure

BINS = 50


def threshold_histogram(ax: Axes, values: np.ndarray, stats: dict, xlabel: str) -> None:
    """`stats` holds the keys of thresholds.threshold_stats."""
    t = stats["threshold"]
    label = f"threshold {t:g} ({stats['threshold_source']}); {stats['rejects']}: {stats['on_rejecting_side']:,} rows"
    if values.size == 0:
        no_data(ax, f"no values; {label}")
        return
    lo, hi = min(values.min(), t), max(values.max(), t)
    ax.hist(values, bins=BINS, range=(lo, hi) if hi > lo else None, color=KEPT_COLOR)
    ax.axvline(t, color=REJECT_COLOR, linestyle="--", linewidth=1.5, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)


def draw_threshold_histogram(values: np.ndarray, stats: dict, title: str, xlabel: str, path: Path) -> Path:
    fig = new_figure()
    ax = fig.add_subplot()
    ax.set_title(f"{title} (n = {values.size:,})")
    threshold_histogram(ax, values, stats, xlabel)
    return save_figure(fig, path)
