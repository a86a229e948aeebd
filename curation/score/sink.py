"""Collects streamed candidate rows per input shard and writes each shard once all its rows have arrived.

`candidates/part-XXXXX.parquet` is renamed into place first, then `part-XXXXX.done.json`, the completion marker
that holds the shard's funnel, stage times and the part's size and SHA-256 (`files`). A shard without a marker, or
whose part no longer matches it (`part_is_intact`), is redone from scratch on resume; the select phase checks the
digest as it reads each part (`curation.select.candidates`).
"""

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common.completion_marker import FILES, discard, load_marker, trust_marker
from common.errors import naming_path
from common.file_digest import write_parquet
from curation.score.funnel import funnel_counts
from curation.stages.base import STAGE_SECONDS

log = logging.getLogger(__name__)

SHARD_ID, SHARD_ROWS = "shard_id", "shard_rows"


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


class CandidateSink:
    """Driver-side: `add` batches as they stream in; a shard is written as soon as it is complete."""

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
        self._parts: dict[int, list[pa.Table]] = {}
        self._rows: Counter = Counter()
        self.completed: list[int] = []

    def add(self, batch: pa.Table) -> list[int]:
        """Buffer a batch; returns the shard ids it completed."""
        done = []
        ids = batch[SHARD_ID].to_numpy()
        for shard_id in sorted(set(ids.tolist())):
            part = batch.filter(pa.array(ids == shard_id))
            self._parts.setdefault(shard_id, []).append(part)
            self._rows[shard_id] += part.num_rows
            expected = part[SHARD_ROWS][0].as_py()
            if self._rows[shard_id] > expected:
                raise RuntimeError(f"shard {shard_id} received {self._rows[shard_id]} rows, expected {expected}")
            if self._rows[shard_id] == expected:
                self._write(shard_id, pa.concat_tables(self._parts.pop(shard_id)))
                done.append(shard_id)
        return done

    def write_empty(self, shard_id: int) -> None:
        """A shard that produced no rows still gets its (empty) part file and marker, so it counts as done."""
        self._write(shard_id, self.schema.empty_table())

    @property
    def pending(self) -> dict[int, int]:
        """Shards with rows buffered but not complete: shard id -> rows so far."""
        return {shard_id: self._rows[shard_id] for shard_id in self._parts}

    def _write(self, shard_id: int, table: pa.Table) -> None:
        table = table.sort_by("key")  # streaming order varies run to run; files must not
        seconds = Counter()
        if STAGE_SECONDS in table.column_names:
            for timings in table[STAGE_SECONDS].to_pylist():
                seconds.update(dict(timings or []))
        # Columns of stages that are switched off stay null, so every part has the full candidate schema.
        candidates = pa.table(
            {
                f.name: table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
                for f in self.schema
            },
            schema=self.schema,
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = part_path(self.out_dir, shard_id)
        record = _replace_atomically(path, lambda p: write_parquet(candidates, p))  # hashed as it is written
        marker = {
            "shard_id": shard_id,
            "source": self.shard_sources[shard_id],
            "rows": table.num_rows,
            "funnel": funnel_counts(table, self.stage_names, self.owner),
            "stage_seconds": {k: round(v, 6) for k, v in sorted(seconds.items())},
            FILES: {path.name: record},
        }
        _replace_atomically(marker_path(self.out_dir, shard_id), lambda p: p.write_text(json.dumps(marker, indent=1)))
        self.completed.append(shard_id)
        log.info("shard %05d complete: %d rows from %s", shard_id, table.num_rows, marker["source"])
