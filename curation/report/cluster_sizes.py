"""Section 6: cluster sizes per level of the hierarchical k-means, before and after balanced sampling."""

from pathlib import Path

import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes

from curation.report.plotting import AFTER_COLOR, BEFORE_COLOR, new_figure, no_data, save_figure

STAT_KEYS = ("count", "min", "median", "max", "entropy", "gini")
PHASES = ("before", "after")


def cluster_stats(select_stats: dict) -> dict | None:
    """{levels, clusters_per_level, before: [{level, count, ...}], after: [...]}; the size lists stay out."""
    clusters = select_stats.get("clusters")
    if not clusters:
        return None
    out = {"levels": clusters.get("levels", len(clusters.get("before") or []))}
    per_level = ((select_stats.get("steps") or {}).get("clustering") or {}).get("clusters_per_level")
    if per_level is not None:
        out["clusters_per_level"] = list(per_level)
    for phase in PHASES:
        out[phase] = [
            {"level": entry["level"]} | {k: (entry.get("stats") or {}).get(k) for k in STAT_KEYS}
            for entry in clusters.get(phase) or []
        ]
    return out


def _label(phase: str, stats: dict) -> str:
    parts = [phase]
    for key in ("entropy", "gini"):
        if stats.get(key) is not None:
            parts.append(f"{key} {stats[key]:.3f}")
    return ", ".join(parts)


def _draw_level(ax: Axes, level: int, entries: dict[str, dict]) -> None:
    ax.set_title(f"level {level}" + (" (leaf)" if level == 1 else ""))
    drawn = False
    for phase, color in zip(PHASES, (BEFORE_COLOR, AFTER_COLOR), strict=True):
        entry = entries.get(phase)
        if entry is None:
            continue
        sizes = np.asarray(entry.get("sizes") or [], dtype=np.float64)
        rank = np.arange(1, sizes.size + 1)
        positive = sizes > 0  # a log axis cannot show an emptied cluster
        if not positive.any():
            continue
        marker = "o" if sizes.size <= 30 else None
        ax.plot(rank[positive], sizes[positive], color=color, marker=marker, markersize=3, label=_label(phase, entry))
        drawn = True
    if not drawn:
        no_data(ax)
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False))  # plain 2, 3, 10, not 2x10^0
    ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
    ax.set_xlabel("cluster rank (largest first)")
    ax.set_ylabel("rows")
    ax.legend(fontsize=7)


def draw_cluster_sizes(select_stats: dict, path: Path) -> Path:
    clusters = select_stats.get("clusters") or {}
    by_level: dict[int, dict[str, dict]] = {}
    for phase in PHASES:
        for entry in clusters.get(phase) or []:
            by_level.setdefault(entry["level"], {})[phase] = {"sizes": entry.get("sizes")} | (entry.get("stats") or {})
    levels = sorted(by_level) or [1]
    fig = new_figure((4.0 * len(levels) + 1.0, 4.0))
    axes = np.atleast_1d(fig.subplots(1, len(levels)))
    for ax, level in zip(axes, levels, strict=True):
        _draw_level(ax, level, by_level.get(level, {}))
    fig.suptitle("Cluster sizes before and after balancing")
    return save_figure(fig, path)
