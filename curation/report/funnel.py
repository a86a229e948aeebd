"""Section 1, the funnel: rows in / kept / rejected per reason at every step of every phase that ran, in order
(score stages, select steps, then the write), with the audit-mode `would_reject` counts next to the real ones."""

from collections import Counter
from pathlib import Path

import numpy as np

from curation.report.inputs import RunInputs
from curation.report.plotting import AUDIT_COLOR, KEPT_COLOR, REJECT_COLOR, new_figure, no_data, save_figure

_COUNTS = ("in", "kept", "rejected", "would_reject")
WRITE_STEP = "written"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _row(step: str, phase: str, counts: dict) -> dict:
    details = {
        k: v
        for k, v in counts.items()
        if k not in _COUNTS and (_is_number(v) or (isinstance(v, list) and all(map(_is_number, v))))
    }
    return {
        "step": step,
        "phase": phase,
        "in": counts["in"],
        "kept": counts["kept"],
        "rejected": dict(counts.get("rejected") or {}),
        "would_reject": dict(counts.get("would_reject") or {}),
        "details": details,
    }


def funnel_rows(inputs: RunInputs) -> list[dict]:
    rows = []
    for name, counts in ((inputs.score_stats or {}).get("stages") or {}).items():
        rows.append(_row(name, "score", counts))
    for name, counts in ((inputs.select_stats or {}).get("steps") or {}).items():
        rows.append(_row(name, "select", counts))
    if inputs.manifest is not None:
        failed = Counter(str(f.get("reason")) for f in inputs.manifest.get("failed") or [])
        samples = inputs.manifest["samples"]
        counts = {"in": samples + failed.total(), "kept": samples, "rejected": dict(sorted(failed.items()))}
        rows.append(_row(WRITE_STEP, "write", counts | {"shards": len(inputs.manifest.get("shards") or [])}))
    return rows


def draw_funnel(rows: list[dict], path: Path) -> Path:
    """Horizontal bars: the rows entering the first step, then the rows surviving each step."""
    labels = ["input"] + [f"{r['phase']}: {r['step']}" for r in rows]
    values = [rows[0]["in"] if rows else 0] + [r["kept"] for r in rows]
    fig = new_figure((8.0, max(3.0, 0.35 * len(labels) + 1.2)))
    ax = fig.add_subplot()
    y = np.arange(len(labels))
    ax.barh(y, values, color=KEPT_COLOR)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for yi, v in zip(y, values, strict=True):
        ax.annotate(f"{v:,}", (v, yi), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel("rows surviving")
    ax.set_xlim(0, max(max(values), 1) * 1.15)
    ax.set_title("Funnel: rows surviving each step")
    return save_figure(fig, path)


def draw_rejections(rows: list[dict], path: Path) -> Path:
    """Grouped bars per (step, reason): rows rejected, and rows an audit-mode filter would reject."""
    pairs = []
    for r in rows:
        for reason in dict.fromkeys([*r["rejected"], *r["would_reject"]]):
            pairs.append((f"{r['step']}: {reason}", r["rejected"].get(reason, 0), r["would_reject"].get(reason, 0)))
    fig = new_figure((8.0, max(3.0, 0.4 * len(pairs) + 1.2)))
    ax = fig.add_subplot()
    ax.set_title("Rejections per reason (audit mode: would reject)")
    if not pairs:
        no_data(ax, "nothing rejected")
        return save_figure(fig, path)
    y = np.arange(len(pairs))
    rejected = [p[1] for p in pairs]
    would = [p[2] for p in pairs]
    ax.barh(y - 0.2, rejected, height=0.4, color=REJECT_COLOR, label="rejected")
    ax.barh(y + 0.2, would, height=0.4, color=AUDIT_COLOR, hatch="//", label="would reject (audit)")
    ax.set_yticks(y, [p[0] for p in pairs])
    ax.invert_yaxis()
    ax.set_xlabel("rows")
    ax.set_xlim(0, max([*rejected, *would, 1]) * 1.1)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
