"""Section 4: head-pose classes of the kept candidates and of the selected rows, side by side."""

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.report.inputs import RunInputs
from curation.report.plotting import AFTER_COLOR, KEPT_COLOR, new_figure, no_data, save_figure

YAW_CLASSES = ("frontal", "three_quarter", "profile", "back")
NO_POSE = "none"  # no head pose: no person found, or the stage did not run on the row


def yaw_counts(table: pa.Table) -> dict[str, int]:
    """{class: rows} over the known classes, any other class seen, and `none`."""
    yaw = pc.struct_field(table["head_pose"], "yaw_class").to_pylist() if table.num_rows else []
    seen = Counter(yaw)
    counts = {c: seen.pop(c, 0) for c in YAW_CLASSES}
    none = seen.pop(None, 0)
    counts |= dict(sorted(seen.items()))
    counts[NO_POSE] = none
    return counts


def head_pose_section(inputs: RunInputs, out_dir: Path) -> tuple[dict, dict[str, Path]]:
    stats: dict[str, dict[str, int]] = {}
    if inputs.candidates is not None:
        kept = inputs.candidates.filter(pc.is_null(inputs.candidates["reject_reason"]))
        stats["candidates"] = yaw_counts(kept)
    if inputs.selection is not None:
        stats["selected"] = yaw_counts(inputs.selection)
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
