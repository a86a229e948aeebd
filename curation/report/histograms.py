"""A histogram with its threshold drawn, the rows beyond it counted in the legend; drawn from the fixed bins a
ColumnStream filled, bar for bar what `ax.hist` of every value would draw."""

from pathlib import Path

from matplotlib.axes import Axes

from curation.report.column_stream import ColumnStream
from curation.report.plotting import KEPT_COLOR, REJECT_COLOR, new_figure, no_data, save_figure


def threshold_histogram(ax: Axes, stream: ColumnStream, stats: dict, xlabel: str) -> None:
    """`stats` holds the keys of thresholds.threshold_stats."""
    t = stats["threshold"]
    label = f"threshold {t:g} ({stats['threshold_source']}); {stats['rejects']}: {stats['on_rejecting_side']:,} rows"
    if stream.count == 0:
        no_data(ax, f"no values; {label}")
        return
    edges = stream.edges
    ax.hist(edges[:-1], bins=edges, weights=stream.counts, color=KEPT_COLOR)  # one weighted point per bin
    ax.axvline(t, color=REJECT_COLOR, linestyle="--", linewidth=1.5, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)


def draw_threshold_histogram(stream: ColumnStream, stats: dict, title: str, xlabel: str, path: Path) -> Path:
    fig = new_figure()
    ax = fig.add_subplot()
    ax.set_title(f"{title} (n = {stream.count:,})")
    threshold_histogram(ax, stream, stats, xlabel)
    return save_figure(fig, path)
