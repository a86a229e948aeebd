"""The score phase's candidate parts as the select phase reads them (curation.select.store indexes them once).

Each part is read once into memory, hashed and parsed from that buffer, so checking it against the SHA-256 its
completion marker records costs no second read. A part that does not match (or has no marker) gets its marker
removed, so that `humans1b curate score` redoes that shard, and select stops with one error naming the parts.
"""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.completion_marker import discard, recorded_files
from common.file_digest import record_of
from curation.layout import CANDIDATES_DIR, SCORE_STATS, PhaseNotRunError
from curation.score.sink import marker_path, part_path, read_marker

log = logging.getLogger(__name__)

# Everything select and write need, except the embedding, which is read once as a matrix.
META_COLUMNS = [
    "key",
    "source",
    "member",
    "member_offset",
    "member_bytes",
    "width",
    "height",
    "phash",
    "persons",
    "max_person_short_side",
    "head_pose",
    "aesthetic",
    "realism",
    "text_overlay",
    "would_reject",
]

# Columns added after parts were first written: a part scored before them reads them as nulls, and the write phase
# then reads its rows' bytes back by streaming their sources, as it did before.
ADDED_COLUMNS = {"member_offset": pa.int64(), "member_bytes": pa.int64()}

_PART_ID = re.compile(r"^part-(\d+)\.(?:parquet|done\.json)$")
_NAMED = 5  # parts named in the error; the log has a line for each


class CandidatesNotScoredError(PhaseNotRunError):
    """Candidate parts that are missing or do not match their completion markers: the score phase must redo them."""


def not_scored_error(problems: list[str]) -> "CandidatesNotScoredError":
    """One error naming the first parts that must be scored again; the log gets a line for each."""
    for problem in problems:
        log.warning("%s", problem)
    more = len(problems) - _NAMED
    named = "; ".join(problems[:_NAMED]) + (f"; and {more} more" if more > 0 else "")
    return CandidatesNotScoredError(
        f"{named}: {'its shard is' if len(problems) == 1 else 'their shards are'} marked for redo; run "
        "`humans1b curate score` (or `humans1b curate`) with the same config and output=, then select again"
    )


def shard_ids(run_dir: Path) -> list[int]:
    """Every shard the score phase made: the ids of the parts and markers on disk, and all ids below the shard count
    stats.json records, so that a shard whose files are both gone is noticed too."""
    if not (run_dir / SCORE_STATS).exists():
        raise PhaseNotRunError(
            f"{run_dir / SCORE_STATS} is missing: the score phase has not finished in {run_dir}; "
            "run `humans1b curate score` (or `humans1b curate`) there first"
        )
    candidates = run_dir / CANDIDATES_DIR
    names = [p.name for p in candidates.iterdir()] if candidates.is_dir() else []
    ids = {int(m.group(1)) for name in names if (m := _PART_ID.match(name))}
    try:
        shards = json.loads((run_dir / SCORE_STATS).read_text()).get("shards")
    except (ValueError, AttributeError):  # not JSON, or not an object: the part files still list the shards
        shards = None
    if isinstance(shards, int):
        ids.update(range(shards))
    if not ids:
        raise PhaseNotRunError(f"{candidates} holds no candidate parts: run `humans1b curate score` there first")
    return sorted(ids)


def read_verified_part(candidates: Path, shard_id: int) -> pa.Table | str:
    """The part's kept rows, after checking its bytes against its marker's SHA-256; else what is wrong with it (the
    marker is then removed, so that the score phase redoes the shard)."""
    part, marker_file = part_path(candidates, shard_id), marker_path(candidates, shard_id)
    marker = read_marker(candidates, shard_id)
    if marker is None:
        return f"{part} has no completion marker (its shard is not scored)"
    recorded = (recorded_files(marker) or {}).get(part.name)
    if recorded is None:
        discard(marker_file)
        return f"{marker_file} records no digest of {part.name} (written by an older version)"
    try:
        data = part.read_bytes()
    except FileNotFoundError:
        discard(marker_file)
        return f"{part} is missing"
    found = record_of(data)
    if found != recorded:
        discard(marker_file)
        return (
            f"{part} does not match its completion marker ({found['bytes']} bytes, sha256 {found['sha256'][:16]}; "
            f"recorded {recorded['bytes']} bytes, sha256 {str(recorded['sha256'])[:16]})"
        )
    reader = pa.BufferReader(data)
    present = set(pq.read_schema(reader).names)
    missing = [name for name in ADDED_COLUMNS if name not in present]
    columns = [name for name in [*META_COLUMNS, "clip"] if name not in missing]
    table = pq.read_table(reader, columns=columns, filters=pc.field("reject_reason").is_null())
    for name in missing:
        table = table.append_column(pa.field(name, ADDED_COLUMNS[name]), pa.nulls(table.num_rows, ADDED_COLUMNS[name]))
    return table.select([*META_COLUMNS, "clip"])


def clip_matrix(column: pa.ChunkedArray) -> np.ndarray:
    """(n, d) float16 from a fixed-size-list column, without a per-row Python loop."""
    d = column.type.list_size
    if column.null_count:
        raise ValueError(f"{column.null_count} kept candidates have no CLIP embedding; the score output is damaged")
    if len(column) == 0:
        return np.zeros((0, d), dtype=np.float16)
    values = pc.list_flatten(column.combine_chunks()).to_numpy(zero_copy_only=False)
    return values.reshape(len(column), d).astype(np.float16, copy=False)
