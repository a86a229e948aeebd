"""Every number the candidate sections show, from two passes over the candidate parts, batch by batch.

Pass one: counts, sums, min/max, the radix counts of the percentiles, threshold counts, the kept rows' head-pose
classes, and where the keys the duplicate pairs show live. Pass two: the histogram bins and the hexagon counts (their
range is known now) and the low radix counts. Memory is a few fixed-size arrays per column, whatever the rows."""

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.report.column_stream import ColumnStream
from curation.report.head_pose import count_classes
from curation.report.hexbin import HexCounts
from curation.report.inputs import PartPosition, RunInputs
from curation.report.thresholds import threshold_stream

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("aesthetic", "nsfw", "realism", "text_overlay")
PERSON_COLUMN = "max_person_short_side"
HEX_GRIDSIZE = 30
_SIZES = ("width", "height", "short_side")


@dataclass
class CandidateScan:
    columns: dict[str, ColumnStream]  # the scores the candidates have, PERSON_COLUMN, width, height, short_side
    sizes: HexCounts | None = None  # width x height; None when no candidate has both
    kept_yaw: Counter = field(default_factory=Counter)  # yaw class (None: no pose) of the kept candidates
    found: dict[str, PartPosition] = field(default_factory=dict)  # wanted key -> the row group it is in


def _values(batch: pa.RecordBatch, column: str) -> np.ndarray:
    return pc.drop_null(batch.column(column)).to_numpy(zero_copy_only=False)


def _sizes(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """Width and height of the rows whose header was read (both known)."""
    known = pc.and_(pc.is_valid(batch.column("width")), pc.is_valid(batch.column("height")))
    pick = batch.filter(known)
    return (pick.column(c).to_numpy(zero_copy_only=False).astype(np.int32) for c in ("width", "height"))


def _feed(scan: CandidateScan, batch: pa.RecordBatch) -> None:
    for column in (*SCORE_COLUMNS, PERSON_COLUMN):
        if column in scan.columns:
            scan.columns[column].add(_values(batch, column))
    width, height = _sizes(batch)
    for column, values in zip(_SIZES, (width, height, np.minimum(width, height)), strict=True):
        scan.columns[column].add(values)
    if scan.sizes is not None:
        scan.sizes.add(width, height)


def scan_candidates(inputs: RunInputs, wanted_keys: set[str]) -> CandidateScan:
    scores = [c for c in SCORE_COLUMNS if c != "nsfw" or c in inputs.optional_columns]
    config = inputs.run_config
    columns = {c: threshold_stream(c, config, np.float32) for c in (*scores, PERSON_COLUMN)}
    columns |= {"width": ColumnStream(np.int32), "height": ColumnStream(np.int32)}
    columns["short_side"] = threshold_stream("short_side", config, np.int32)
    scan = CandidateScan(columns)
    numeric = [*scores, PERSON_COLUMN, "width", "height"]
    wanted = pa.array(sorted(wanted_keys), pa.string())

    for position, batch in inputs.candidate_batches([*numeric, "head_pose.yaw_class", "reject_reason", "key"]):
        _feed(scan, batch)
        kept = batch.filter(pc.is_null(batch.column("reject_reason")))
        count_classes(scan.kept_yaw, pc.struct_field(kept.column("head_pose"), "yaw_class"))
        if len(wanted):
            for key in batch.column("key").filter(pc.is_in(batch.column("key"), wanted)).to_pylist():
                scan.found[key] = position
    log.info("report: candidates pass 1 done, %d rows", scan.columns["width"].count)

    for stream in columns.values():
        stream.next_pass()
    if columns["width"].count:
        w, h = columns["width"], columns["height"]
        scan.sizes = HexCounts((w.low, w.high, h.low, h.high), HEX_GRIDSIZE)
    for _, batch in inputs.candidate_batches(numeric):
        _feed(scan, batch)
    return scan
