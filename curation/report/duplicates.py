"""Section 5: duplicates the select phase removed, per method, with removed/kept example pairs side by side."""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from common.reasons import RejectReason
from curation.readers.fetch import Location
from curation.report.config import ReportConfig
from curation.report.inputs import RunInputs, dataset_batches
from curation.report.plotting import REJECT_COLOR, new_figure, no_data, save_figure, save_image
from curation.report.row_sample import SmallestPerGroup, priorities
from curation.report.thumbnails import pairs_image, tile_for

# Reject reason -> the select step that gives it.
DUP_METHODS = {RejectReason.DUP_PHASH.value: "phash_dedup", RejectReason.DUP_EMBEDDING.value: "semdedup"}
KEY_CHARS = 16  # of a key shown under a pair


@dataclass
class RejectedScan:
    reasons: Counter = field(default_factory=Counter)  # reject_reason -> rows in select/rejected
    pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # reason -> (removed key, kept key)


def scan_rejected(inputs: RunInputs, config: ReportConfig) -> RejectedScan:
    """One pass over select/rejected: rows per reason, and up to `dup_examples` (removed, kept) pairs per dedup
    method, a seeded choice (row_sample) in key order; no pairs when the select phase has not written it."""
    scan = RejectedScan(pairs={reason: [] for reason in DUP_METHODS})
    examples = SmallestPerGroup(config.dup_examples)
    for batch in dataset_batches(inputs.select_rejected, ["key", "reject_reason", "dup_of"]):
        for entry in pc.value_counts(batch.column("reject_reason")).to_pylist():
            scan.reasons[entry["values"]] += entry["counts"]
        dup = pc.and_(
            pc.is_in(batch.column("reject_reason"), pa.array(list(DUP_METHODS))), pc.is_valid(batch.column("dup_of"))
        )
        rows = pa.table({"key": batch["key"], "group": batch["reject_reason"], "dup_of": batch["dup_of"]}).filter(dup)
        examples.add(rows.append_column("priority", pa.array(priorities(rows["key"], config.seed))))
    for reason, rows in examples.groups().items():
        scan.pairs[reason] = list(zip(rows["key"].to_pylist(), rows["dup_of"].to_pylist(), strict=True))
    return scan


def duplicate_counts(select_stats: dict | None, rejected: RejectedScan | None) -> dict[str, int] | None:
    """{reason: rows removed} for each dedup method that ran (select_stats.json first, else select/rejected)."""
    if select_stats is None and rejected is None:
        return None
    steps = (select_stats or {}).get("steps") or {}
    counts = {}
    for reason, step in DUP_METHODS.items():
        if step in steps:
            counts[reason] = int((steps[step].get("rejected") or {}).get(reason, 0))
        elif rejected is not None:
            counts[reason] = rejected.reasons.get(reason, 0)
    return counts


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
