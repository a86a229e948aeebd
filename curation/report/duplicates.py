"""Section 5: duplicates the select phase removed, per method, with removed/kept example pairs side by side."""

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from PIL import Image

from common.reasons import RejectReason
from curation.readers.fetch import Location
from curation.report.config import ReportConfig
from curation.report.inputs import RunInputs
from curation.report.plotting import REJECT_COLOR, new_figure, no_data, save_figure, save_image
from curation.report.thumbnails import pairs_image, tile_for

# Reject reason -> the select step that gives it.
DUP_METHODS = {RejectReason.DUP_PHASH.value: "phash_dedup", RejectReason.DUP_EMBEDDING.value: "semdedup"}
KEY_CHARS = 16  # of a key shown under a pair


def duplicate_counts(inputs: RunInputs) -> dict[str, int] | None:
    """{reason: rows removed} for each dedup method that ran (select_stats.json first, else select/rejected)."""
    if inputs.select_stats is None and inputs.select_rejected is None:
        return None
    steps = (inputs.select_stats or {}).get("steps") or {}
    rejected = inputs.select_rejected
    counts = {}
    for reason, step in DUP_METHODS.items():
        if step in steps:
            counts[reason] = int((steps[step].get("rejected") or {}).get(reason, 0))
        elif rejected is not None:
            counts[reason] = int(pc.sum(pc.equal(rejected["reject_reason"], reason)).as_py() or 0)
    return counts


def pick_pairs(inputs: RunInputs, config: ReportConfig) -> dict[str, list[tuple[str, str]]]:
    """Up to `dup_examples` (removed key, kept key) pairs per method, a seeded choice in key order."""
    rejected = inputs.select_rejected
    pairs = {}
    for i, reason in enumerate(DUP_METHODS):
        if rejected is None:
            pairs[reason] = []
            continue
        rows = rejected.filter(pc.and_(pc.equal(rejected["reject_reason"], reason), pc.is_valid(rejected["dup_of"])))
        rows = rows.sort_by("key")
        n = min(config.dup_examples, rows.num_rows)
        chosen = np.sort(np.random.default_rng([config.seed, i]).choice(rows.num_rows, size=n, replace=False))
        keys, dup_of = rows["key"].to_pylist(), rows["dup_of"].to_pylist()
        pairs[reason] = [(keys[j], dup_of[j]) for j in chosen.tolist()]
    return pairs


def draw_duplicate_counts(counts: dict[str, int], path: Path) -> Path:
    fig = new_figure((6.0, 3.5))
    ax = fig.add_subplot()
    ax.set_title("Duplicates removed per method")
    if not counts:
        no_data(ax, "no dedup step has run")
    else:
        bars = ax.bar(list(counts), list(counts.values()), color=REJECT_COLOR)
        ax.bar_label(bars, labels=[f"{v:,}" for v in counts.values()], fontsize=8)
        ax.set_ylabel("rows removed")
        ax.set_ylim(0, max([*counts.values(), 1]) * 1.15)
    return save_figure(fig, path)


def draw_pairs(
    pairs: dict[str, list[tuple[str, str]]],
    locations: dict[str, Location],
    tiles: dict[Location, Image.Image],
    size: int,
    out_dir: Path,
) -> dict[str, Path]:
    """One PNG per method, a row per pair; a key without readable pixels gets a placeholder tile."""
    plots = {}
    for reason, chosen in pairs.items():
        rows = [
            (
                tile_for(tiles, locations.get(removed), size),
                tile_for(tiles, locations.get(kept), size),
                f"{removed[:KEY_CHARS]} -> {kept[:KEY_CHARS]}",
            )
            for removed, kept in chosen
        ]
        name = f"dup_pairs_{reason}"
        plots[name] = save_image(pairs_image(rows, size, f"{reason}: removed vs kept"), out_dir / f"{name}.png")
    return plots
