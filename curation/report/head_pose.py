"""Section 4: head-pose classes of the kept candidates and of the selected rows, side by side."""

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.report.plotting import AFTER_COLOR, KEPT_COLOR, new_figure, no_data, save_figure

YAW_CLASSES = ("frontal", "three_quarter", "profile", "back")
NO_POSE = "none"  # no head pose: no person found, or the stage did not run on the row


def count_classes(counter: Counter, yaw: pa.Array | pa.ChunkedArray) -> None:
    """Add a batch's yaw classes (None: no pose) to `counter`, without a Python object per row."""
    for entry in pc.value_counts(yaw).to_pylist():
        counter[entry["values"]] += entry["counts"]


def yaw_counts(seen: Counter) -> dict[str, int]:
    """{class: rows} over the known classes, any other class seen, and `none`."""
    seen = Counter(seen)
    counts = {c: seen.pop(c, 0) for c in YAW_CLASSES}
    none = seen.pop(None, 0)
    counts |= dict(sorted(seen.items()))
    counts[NO_POSE] = none
    return counts


def head_pose_section(kept: Counter | None, selected: Counter | None, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    """Yaw classes of the kept candidates and of the selected rows (None: that phase has not run)."""
    stats: dict[str, dict[str, int]] = {}
    if kept is not None:
        stats["candidates"] = yaw_counts(kept)
    if selected is not None:
        stats["selected"] = yaw_counts(selected)
    classes = list(dict.fromkeys(c for counts in stats.values() for c in counts))
    fig = new_figure()
    ax = fig.add_subplot()
    ax.set_title("Head pose (yaw class)")
    colors = {"candidates": KEPT_COLOR, "selected": AFTER_COLOR}
    labels = {"candidates": "kept candidates", "selected": "selected"}
    if not any(sum(c.values()) for c in stats.values()):
        no_data(ax)
    else:
        x = np.arange(len(classes))
        width = 0.8 / len(stats)
        for i, (group, counts) in enumerate(stats.items()):
            values = [counts.get(c, 0) for c in classes]
            ax.bar(x + (i - (len(stats) - 1) / 2) * width, values, width, color=colors[group], label=labels[group])
        ax.set_xticks(x, classes)
        ax.set_ylabel("rows")
        ax.legend(fontsize=8)
    return stats, {"head_pose": save_figure(fig, out_dir / "head_pose.png")}
