"""Candidate rows are written where they are scored; the driver only counts them.

The pipeline's last map (`write_fragments`, on the workers) writes each batch's rows of each input shard as a fragment
file under `candidates/_fragments/XXXXX/` and passes on one small record per fragment: shard, rows, path and the
nodes that ran each stage. The driver (`CandidateSink`) adds up the rows per shard; once a shard's rows are all
there, one Ray task (`write_part`) joins its fragments into `candidates/part-XXXXX.parquet`, renamed into place
first, then `part-XXXXX.done.json`, the completion marker that holds the shard's funnel, stage times, nodes and the
part's size and SHA-256 (`files`), and removes the fragments. A shard without a marker, or whose part no longer
matches it (`part_is_intact`), is redone from scratch on resume; the select phase checks the digest as it reads each
part (`curation.select.candidates`).

Fragment names are a digest of their rows' keys: a retried map task rewrites the same file, and only the paths the
stream reported are read, so a killed attempt's leftovers are never counted.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from common.completion_marker import FILES, discard, load_marker, trust_marker
from common.errors import naming_path
from common.file_digest import write_parquet
from curation.score.funnel import funnel_counts
from curation.stages.base import STAGE_SECONDS
from curation.stages.stage_nodes import batch_nodes, this_node

log = logging.getLogger(__name__)

SHARD_ID, SHARD_ROWS = "shard_id", "shard_rows"
FRAGMENTS = "_fragments"
MAX_PARTS_IN_FLIGHT = 64  # write_part tasks the driver keeps running before it waits for one
RECORD_SCHEMA = pa.schema(
    [
        pa.field(SHARD_ID, pa.int64()),
        pa.field(SHARD_ROWS, pa.int64()),
        pa.field("rows", pa.int64()),
        pa.field("path", pa.string()),
        pa.field("nodes", pa.string()),  # JSON {stage: [node ids]} of the stages that ran this fragment's rows
        # JSON [errno, strerror, filename] of an OSError writing the fragment: Ray Data hands the driver a worker's
        # exception as text only, and the command reports a full disk or read-only output as one line from the OSError
        pa.field("os_error", pa.string()),
    ]
)


def part_path(out_dir: Path, shard_id: int) -> Path:
    return out_dir / f"part-{shard_id:05d}.parquet"


def marker_path(out_dir: Path, shard_id: int) -> Path:
    return out_dir / f"part-{shard_id:05d}.done.json"


def read_marker(out_dir: Path, shard_id: int) -> dict | None:
    """The shard's marker, or None when it has none (an unreadable marker is removed: see load_marker)."""
    return load_marker(marker_path(out_dir, shard_id))


def part_is_intact(out_dir: Path, shard_id: int, marker: dict) -> bool:
    """Resume's check: the part has the size its marker records and a parquet footer holding the marker's row count.
    Costs a stat and a footer read, never the whole part. When it fails, one WARNING line says why and the marker and
    the part are removed, so the shard is scored again."""
    shard = f"shard {shard_id:05d}"
    if not trust_marker(marker_path(out_dir, shard_id), marker, shard=shard):
        return False
    part = part_path(out_dir, shard_id)
    try:
        rows = pq.read_metadata(part).num_rows
    except (pa.ArrowInvalid, OSError) as err:
        problem = f"its parquet footer cannot be read ({err})"
    else:
        if rows == marker.get("rows"):
            return True
        problem = f"its parquet footer counts {rows} rows, its marker {marker.get('rows')}"
    log.warning("%s: %s: %s is redone", part, problem, shard)
    discard(marker_path(out_dir, shard_id), part)
    return False


def _replace_atomically(path: Path, write):
    """Write through a temporary name and rename into place; returns what `write` returned."""
    tmp = path.with_name(path.name + ".partial")
    with naming_path(tmp):  # a full disk's OSError names no file; the one-line report should
        result = write(tmp)
    os.replace(tmp, path)
    return result


def fragment_dir(out_dir: Path, shard_id: int) -> Path:
    return out_dir / FRAGMENTS / f"{shard_id:05d}"


def write_fragments(batch: pa.Table, *, out_dir: str, schema: pa.Schema) -> pa.Table:
    """The pipeline's last map, on the workers: writes the batch's rows of each shard (candidate columns and stage
    times) as a fragment file, returns one RECORD_SCHEMA row per fragment."""
    records = []
    ids = batch[SHARD_ID].to_numpy()
    for shard_id in sorted(set(ids.tolist())):
        part = batch.filter(pa.array(ids == shard_id))
        keys = sorted(part["key"].to_pylist())
        path = fragment_dir(Path(out_dir), shard_id) / (
            hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32] + ".parquet"
        )
        table = _with_schema(part, schema, keep=[STAGE_SECONDS])
        error = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _replace_atomically(path, lambda p, t=table: pq.write_table(t, p))
        except OSError as err:
            error = json.dumps([err.errno, err.strerror or str(err), err.filename and os.fspath(err.filename)])
        records.append(
            {SHARD_ID: shard_id, SHARD_ROWS: part[SHARD_ROWS][0].as_py(), "rows": part.num_rows, "path": str(path),
             "nodes": json.dumps(batch_nodes(part), sort_keys=True), "os_error": error}
        )  # fmt: skip
    return pa.Table.from_pylist(records, schema=RECORD_SCHEMA)


def _with_schema(table: pa.Table, schema: pa.Schema, *, keep: Sequence[str] = ()) -> pa.Table:
    """The candidate columns in schema order (columns of switched-off stages as nulls, so every part has the full
    candidate schema), then the `keep` columns the table has."""
    columns = {
        f.name: table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    }
    fields = list(schema)
    for name in keep:
        if name in table.column_names:
            columns[name] = table[name]
            fields.append(table.schema.field(name))
    return pa.table(columns, schema=pa.schema(fields))


def write_part(
    out_dir: str,
    shard_id: int,
    fragments: Sequence[str],
    *,
    source: str,
    schema: pa.Schema,
    stage_names: Sequence[str],
    owner: dict[str, str],
    nodes: dict[str, list[str]],
) -> str:
    """Joins a shard's fragments into its part and marker (in that order), then removes the fragments; returns the
    node it ran on. Runs as a Ray task (or inline): it holds one shard's candidates."""
    out = Path(out_dir)
    tables = [pq.read_table(f) for f in fragments]
    table = pa.concat_tables(tables) if tables else _with_schema(schema.empty_table(), schema)
    table = table.sort_by("key")  # streaming order varies run to run; files must not
    seconds = Counter()
    if STAGE_SECONDS in table.column_names:
        for timings in table[STAGE_SECONDS].to_pylist():
            seconds.update(dict(timings or []))
    out.mkdir(parents=True, exist_ok=True)
    path = part_path(out, shard_id)
    candidates = _with_schema(table, schema)
    record = _replace_atomically(path, lambda p: write_parquet(candidates, p))  # hashed as it is written
    node = this_node()
    marker = {
        "shard_id": shard_id,
        "source": source,
        "rows": table.num_rows,
        "funnel": funnel_counts(table, stage_names, owner),
        "stage_seconds": {k: round(v, 6) for k, v in sorted(seconds.items())},
        "nodes": {**{k: sorted(v) for k, v in sorted(nodes.items())}, "candidates": [node]},
        FILES: {path.name: record},
    }
    _replace_atomically(marker_path(out, shard_id), lambda p: p.write_text(json.dumps(marker, indent=1)))
    shutil.rmtree(fragment_dir(out, shard_id), ignore_errors=True)
    log.info("shard %05d complete: %d rows from %s", shard_id, table.num_rows, source)
    return node


class CandidateSink:
    """Driver-side: `add` the fragment records as they stream in (RECORD_SCHEMA rows: counts, never candidate rows);
    a shard complete in them gets its write_part task. `finish` waits for every task started."""

    def __init__(
        self,
        out_dir: Path,
        *,
        schema: pa.Schema,
        shard_sources: dict[int, str],
        stage_names: Sequence[str],
        owner: dict[str, str],
    ) -> None:
        self.out_dir = Path(out_dir)
        self.schema = schema
        self.shard_sources = shard_sources
        self.stage_names = list(stage_names)
        self.owner = owner
        self._fragments: dict[int, dict[str, int]] = {}  # shard -> {path: rows}: a path reported twice counts once
        self._nodes: dict[int, dict[str, set[str]]] = {}
        self._running: dict[ray.ObjectRef, int] = {}
        self.started: list[int] = []  # shards whose part is being or has been written
        self.completed: list[int] = []
        self._task = ray.remote(write_part).options(num_cpus=0.25, name="write_part")

    def clear_fragments(self) -> None:
        """Fragments a killed run left behind: their shards are scored again from scratch."""
        shutil.rmtree(self.out_dir / FRAGMENTS, ignore_errors=True)

    def add(self, records: pa.Table) -> list[int]:
        """Count a batch of fragment records; returns the shard ids it completed (their parts are being written)."""
        self._collect()
        done = []
        for record in records.to_pylist():
            if record["os_error"]:
                raise OSError(*json.loads(record["os_error"]))
            shard_id = record[SHARD_ID]
            fragments = self._fragments.setdefault(shard_id, {})
            fragments[record["path"]] = record["rows"]
            for stage, nodes in json.loads(record["nodes"]).items():
                self._nodes.setdefault(shard_id, {}).setdefault(stage, set()).update(nodes)
            rows, expected = sum(fragments.values()), record[SHARD_ROWS]
            if rows > expected:
                raise RuntimeError(f"shard {shard_id} received {rows} rows, expected {expected}")
            if rows == expected:
                self._start(shard_id, sorted(self._fragments.pop(shard_id)))
                done.append(shard_id)
        return done

    def write_empty(self, shard_id: int) -> None:
        """A shard that produced no rows still gets its (empty) part file and marker, so it counts as done."""
        self._start(shard_id, [])

    @property
    def pending(self) -> dict[int, int]:
        """Shards with rows counted but not complete: shard id -> rows so far."""
        return {shard_id: sum(f.values()) for shard_id, f in self._fragments.items()}

    def finish(self) -> None:
        """Wait for every part being written."""
        while self._running:
            self._wait_one()
        with contextlib.suppress(OSError):  # not empty: another shard's fragments are still there
            (self.out_dir / FRAGMENTS).rmdir()

    def _start(self, shard_id: int, fragments: list[str]) -> None:
        while len(self._running) >= MAX_PARTS_IN_FLIGHT:
            self._wait_one()
        nodes = {stage: sorted(ids) for stage, ids in self._nodes.pop(shard_id, {}).items()}
        ref = self._task.remote(
            str(self.out_dir),
            shard_id,
            fragments,
            source=self.shard_sources[shard_id],
            schema=self.schema,
            stage_names=self.stage_names,
            owner=self.owner,
            nodes=nodes,
        )
        self._running[ref] = shard_id
        self.started.append(shard_id)

    def _collect(self) -> None:
        """Note the parts written since the last look, without waiting."""
        if self._running:
            ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
            for ref in ready:
                ray.get(ref)  # a failed write raises here
                self._completed(self._running.pop(ref))

    def _wait_one(self) -> None:
        (ready,), _ = ray.wait(list(self._running), num_returns=1)
        ray.get(ready)  # a failed write raises here
        self._completed(self._running.pop(ready))

    def _completed(self, shard_id: int) -> None:
        self.completed.append(shard_id)
