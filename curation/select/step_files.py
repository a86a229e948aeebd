"""Each select step's result on disk: `select/<step>/part-XXXXX.parquet` per candidate part it touched, then
`select/<step>/_done.json` (fingerprint, stats, rows removed per part), written last.

A step whose `_done.json` is missing, unreadable or made from other inputs or settings is redone from an emptied
folder, so a re-run resumes at the first missing or outdated step and never mixes files of two runs. A removal file
lists positions in the part's kept rows (`select/rows/part-XXXXX.parquet`), plus the key of the row kept in a removed
duplicate's place; a part with no file lost nothing to the step.
"""

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.completion_marker import load_marker
from curation.layout import SELECT_DIR

log = logging.getLogger(__name__)

DONE = "_done.json"
REMOVED_SCHEMA = pa.schema([pa.field("row", pa.int32(), nullable=False), pa.field("dup_of", pa.string())])


def step_dir(out: Path, name: str) -> Path:
    return out / SELECT_DIR / name


def part_file(folder: Path, shard_id: int) -> Path:
    return folder / f"part-{shard_id:05d}.parquet"


def read_done(folder: Path, fingerprint: str) -> dict[str, Any] | None:
    """The step's saved summary when it was made from these inputs and settings and every file it lists still has
    its recorded size (one stat per file), else None."""
    done = load_marker(folder / DONE)
    if done is None or done.get("fingerprint") != fingerprint or not isinstance(done.get("stats"), dict):
        return None
    files = done.get("files")
    if not isinstance(files, dict):
        return None
    for name, size in files.items():
        path = folder / name
        found = path.stat().st_size if path.is_file() else None
        if found != size:
            log.warning("%s has %s bytes, %s records %s: the step is redone", path, found, folder / DONE, size)
            return None
    return done


def start_step(folder: Path) -> None:
    """An empty folder for a step about to run: nothing of an earlier, outdated or interrupted run survives."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "tmp").mkdir(parents=True)


def finish_step(folder: Path, fingerprint: str, stats: dict[str, Any], removed_per_part: dict[int, int]) -> dict:
    shutil.rmtree(folder / "tmp", ignore_errors=True)
    done = {
        "fingerprint": fingerprint,
        "stats": stats,
        "files": {p.name: p.stat().st_size for p in sorted(folder.glob("part-*.parquet"))},
        "removed_per_part": {str(k): int(v) for k, v in sorted(removed_per_part.items()) if v},
    }
    write_json(folder / DONE, done)
    return done


def removed_counts(done: dict[str, Any]) -> dict[int, int]:
    return {int(k): int(v) for k, v in done.get("removed_per_part", {}).items()}


def write_json(path: Path, content: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(content, indent=1) + "\n")
    os.replace(tmp, path)


def write_table(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_removed(folder: Path, shard_id: int, rows: np.ndarray, dup_of: list[str | None] | None = None) -> None:
    rows = np.asarray(rows, dtype=np.int32)
    dup = pa.array(dup_of if dup_of is not None else [None] * len(rows), pa.string())
    write_table(part_file(folder, shard_id), pa.table({"row": rows, "dup_of": dup}, schema=REMOVED_SCHEMA))


def read_removed(folder: Path, shard_id: int) -> pa.Table:
    path = part_file(folder, shard_id)
    return pq.read_table(path, schema=REMOVED_SCHEMA) if path.exists() else REMOVED_SCHEMA.empty_table()


def alive_positions(removal_dirs: list[str], shard_id: int, count: int) -> np.ndarray:
    """Positions of the part's kept rows that no earlier step removed."""
    alive = np.ones(count, dtype=bool)
    for folder in removal_dirs:
        alive[read_removed(Path(folder), shard_id)["row"].to_numpy()] = False
    return np.flatnonzero(alive)
