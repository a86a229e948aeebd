"""The kept candidates as the select steps read them: per score part, its kept rows' metadata sorted by key
(`select/rows/part-XXXXX.parquet`) and their embeddings as a float16 `.npy` (`part-XXXXX.npy`), memory-mapped by
every reader, never gathered into one array.

Built once by one Ray task per part, which checks the candidate part against the SHA-256 its score marker records
(the bytes are read once, hashed and parsed from that buffer). A row's global id is its part's offset plus its
position in the part; a step's selection is a per-part array of those positions, not a copy of the rows.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.completion_marker import discard, load_marker, recorded_files
from curation.layout import SELECT_DIR
from curation.select.candidates import META_COLUMNS, clip_matrix, not_scored_error, read_verified_part, shard_ids
from curation.select.tasks import run_tasks, select_task

log = logging.getLogger(__name__)

ROWS_DIR = "rows"


def rows_dir(out: Path) -> Path:
    return out / SELECT_DIR / ROWS_DIR


def meta_path(folder: Path, shard_id: int) -> Path:
    return folder / f"part-{shard_id:05d}.parquet"


def embedding_path(folder: Path, shard_id: int) -> Path:
    return folder / f"part-{shard_id:05d}.npy"


def _marker(folder: Path, shard_id: int) -> Path:
    return folder / f"part-{shard_id:05d}.done.json"


@dataclass(frozen=True)
class Store:
    """Where the kept rows live and how many each part holds; O(parts) memory, whatever the row count."""

    folder: Path
    shard_ids: np.ndarray  # [parts] int64
    counts: np.ndarray  # [parts] int64, kept rows per part
    dim: int
    digest: str  # identifies the candidate set: every part's recorded SHA-256, in shard order

    @property
    def offsets(self) -> np.ndarray:
        """[parts + 1] global id of each part's first row."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def embeddings(self, shard_id: int) -> np.ndarray:
        """The part's [rows, dim] float16 embeddings, memory-mapped read-only."""
        return np.load(embedding_path(self.folder, shard_id), mmap_mode="r", allow_pickle=False)

    def meta(self, shard_id: int, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(meta_path(self.folder, shard_id), columns=columns)


def build_store(out: Path, candidates: Path) -> Store:
    """Index every candidate part (Ray tasks; a part already indexed from the same bytes is kept)."""
    ids = shard_ids(out)
    folder = rows_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    task = select_task(_index_part)
    results = run_tasks([task.remote(str(candidates), str(folder), i) for i in ids], desc="select: index candidates")
    problems = [r["problem"] for r in results if r.get("problem")]
    if problems:
        raise not_scored_error(problems)
    dims = {r["dim"] for r in results}
    if len(dims) > 1:
        raise ValueError(f"candidate parts disagree on the CLIP width: {sorted(dims)}; the score output is mixed")
    digest = hashlib.sha256("\n".join(f"{r['shard_id']} {r['sha256']}" for r in results).encode()).hexdigest()[:16]
    return Store(
        folder=folder,
        shard_ids=np.array([r["shard_id"] for r in results], dtype=np.int64),
        counts=np.array([r["rows"] for r in results], dtype=np.int64),
        dim=dims.pop() if dims else 0,
        digest=digest,
    )


def _index_part(candidates: str, folder: str, shard_id: int) -> dict:
    """Verify one candidate part and write its kept rows' metadata and embeddings; returns a small summary."""
    candidates_dir, out_dir = Path(candidates), Path(folder)
    score_marker = load_marker(candidates_dir / f"part-{shard_id:05d}.done.json")
    recorded = (recorded_files(score_marker) or {}).get(f"part-{shard_id:05d}.parquet") if score_marker else None
    done = _marker(out_dir, shard_id)
    previous = load_marker(done)
    if (
        recorded is not None
        and previous is not None
        and previous.get("source") == recorded
        and _intact(out_dir, previous)
    ):
        return {"shard_id": shard_id, "rows": previous["rows"], "dim": previous["dim"], "sha256": recorded["sha256"]}
    discard(done)
    part = read_verified_part(candidates_dir, shard_id)
    if isinstance(part, str):
        return {"shard_id": shard_id, "problem": part}
    table = part.sort_by("key")
    dim = table.schema.field("clip").type.list_size
    embeddings = clip_matrix(table["clip"])
    meta = table.select(META_COLUMNS)
    files = {}
    for path, write in (
        (meta_path(out_dir, shard_id), lambda p: pq.write_table(meta, p)),
        (embedding_path(out_dir, shard_id), lambda p: np.save(p, embeddings, allow_pickle=False)),
    ):
        tmp = path.with_name(path.name + ".partial")
        with open(tmp, "wb") as handle:
            write(handle)
        tmp.replace(path)
        files[path.name] = {"bytes": path.stat().st_size}
    marker = {"rows": table.num_rows, "dim": dim, "source": recorded, "files": files}
    tmp = done.with_name(done.name + ".partial")
    tmp.write_text(json.dumps(marker))
    tmp.replace(done)
    return {"shard_id": shard_id, "rows": table.num_rows, "dim": dim, "sha256": recorded["sha256"]}


def _intact(folder: Path, marker: dict) -> bool:
    files = marker.get("files")
    if not isinstance(files, dict) or not isinstance(marker.get("rows"), int) or not isinstance(marker.get("dim"), int):
        return False
    for name, record in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != record.get("bytes"):
            return False
    return True
