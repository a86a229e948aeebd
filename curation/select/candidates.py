"""The score phase's kept candidates as the select phase needs them: metadata columns and the CLIP matrix."""

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from curation.layout import CANDIDATES_DIR, SCORE_STATS, PhaseNotRunError

# Everything select and write need, except the embedding, which is read once as a matrix.
META_COLUMNS = [
    "key",
    "source",
    "member",
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


def load_kept_candidates(run_dir: Path) -> tuple[pa.Table, np.ndarray]:
    """(metadata sorted by key, float16 CLIP matrix in the same row order) of rows the score phase kept."""
    if not (run_dir / SCORE_STATS).exists():
        raise PhaseNotRunError(
            f"{run_dir / SCORE_STATS} is missing: the score phase has not finished in {run_dir}; "
            "run `humans1b curate score` (or `humans1b curate`) there first"
        )
    ds = pads.dataset(sorted(str(p) for p in (run_dir / CANDIDATES_DIR).glob("part-*.parquet")), format="parquet")
    table = ds.to_table(columns=[*META_COLUMNS, "clip"], filter=pc.field("reject_reason").is_null())
    table = table.sort_by("key")
    clip = clip_matrix(table["clip"])
    return table.drop_columns(["clip"]), clip


def clip_matrix(column: pa.ChunkedArray) -> np.ndarray:
    """(n, d) float16 from a fixed-size-list column, without a per-row Python loop."""
    d = column.type.list_size
    if column.null_count:
        raise ValueError(f"{column.null_count} kept candidates have no CLIP embedding; the score output is damaged")
    if len(column) == 0:
        return np.zeros((0, d), dtype=np.float16)
    values = pc.list_flatten(column.combine_chunks()).to_numpy(zero_copy_only=False)
    return values.reshape(len(column), d).astype(np.float16, copy=False)


def keys_digest(keys: pa.ChunkedArray) -> str:
    """Identifies the candidate set: a changed score output invalidates every select step."""
    return hashlib.sha256("\n".join(keys.to_pylist()).encode("utf-8")).hexdigest()[:16]
