"""The one place both dedup steps meet: duplicate edges (pairs of global row ids, written by many Ray tasks) ->
connected components -> the most preferred row of each component is kept -> per-part removal files.

Only rows that have a duplicate are ranked: their keep-by columns are fetched by one Ray task per part that holds
some, so memory here grows with the number of duplicates, never with the number of rows.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa

from curation.select.components import component_labels, keep_best, preference_rank
from curation.select.step_files import write_removed
from curation.select.store import Store, meta_path
from curation.select.tasks import run_tasks, select_task


def load_edges(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    arrays = [np.load(f, allow_pickle=False) for f in files if f.exists()]
    arrays = [a for a in arrays if a.size]
    if not arrays:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    edges = np.concatenate(arrays, axis=1)
    return edges[0].astype(np.int64), edges[1].astype(np.int64)


def fetch_rows(folder: str, shard_id: int, positions: np.ndarray, columns: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    return pq.read_table(meta_path(Path(folder), shard_id), columns=columns).take(pa.array(positions))


def resolve(
    store: Store,
    left: np.ndarray,
    right: np.ndarray,
    keep_by: list[str],
    out_folder: Path | None,
    nodes: set[str],
) -> dict:
    """Components of the edge graph over global ids; writes a removal file per part (unless out_folder is None:
    audit) and returns {components, removed, removed_per_part}."""
    ids = np.unique(np.concatenate([left, right]))
    if len(ids) == 0:
        return {"components": 0, "removed": 0, "removed_per_part": {}}
    labels = component_labels(len(ids), np.searchsorted(ids, left), np.searchsorted(ids, right))
    offsets = store.offsets
    part_of = np.searchsorted(offsets, ids, side="right") - 1
    starts = np.searchsorted(part_of, np.arange(len(store.counts) + 1))
    parts = np.flatnonzero(np.diff(starts))
    task = select_task(fetch_rows)
    columns = ["key", *keep_by]
    tables = run_tasks(
        [
            task.remote(
                str(store.folder), int(store.shard_ids[p]), ids[starts[p] : starts[p + 1]] - offsets[p], columns
            )
            for p in parts
        ],
        desc="fetch duplicates",
        nodes=nodes,
        progress=False,
    )
    table = pa.concat_tables(tables)  # in global id order, as ids
    kept = keep_best(labels, preference_rank(table, keep_by))
    gone = np.flatnonzero(kept != np.arange(len(ids)))
    keys = table["key"].to_numpy(zero_copy_only=False)
    removed_per_part: dict[int, int] = {}
    for p in parts:
        mine = gone[(gone >= starts[p]) & (gone < starts[p + 1])]
        if len(mine) == 0:
            continue
        shard_id = int(store.shard_ids[p])
        removed_per_part[shard_id] = len(mine)
        if out_folder is not None:
            write_removed(out_folder, shard_id, ids[mine] - offsets[p], keys[kept[mine]].tolist())
    sizes = np.bincount(labels)
    return {"components": int((sizes >= 2).sum()), "removed": len(gone), "removed_per_part": removed_per_part}
