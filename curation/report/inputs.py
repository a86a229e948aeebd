"""What the curation phases have written into a run directory; a phase that has not run reads as None.

The JSON files are small and read whole. The parquet outputs grow with the rows (10^9 candidates), so they are only
ever read batch by batch, file by file and row group by row group: the candidate parts, and `selection.parquet` and
`select/rejected.parquet`, each a single file or a directory of part files (pyarrow.dataset lists them)."""

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from common.schemas import candidate_schema
from curation.readers.fetch import Location
from curation.report.config import (
    CANDIDATES_GLOB,
    MANIFEST,
    RUN_CONFIG,
    SCORE_STATS,
    SELECT_REJECTED,
    SELECT_STATS,
    SELECTION,
)

log = logging.getLogger(__name__)

BATCH_ROWS = 65_536  # rows per batch held at a time; the report's memory does not grow with the run
OPTIONAL_CANDIDATE_COLUMNS = ("nsfw",)  # absent from candidates scored before the nsfw stage existed
_CANDIDATE_TYPES = candidate_schema(1)  # the types of the columns the report reads (never `clip`)

PartPosition = tuple[int, int]  # (index into candidate_files, row group)


@dataclass
class RunInputs:
    run_dir: Path
    run_config: DictConfig | None = None
    score_stats: dict | None = None
    candidate_files: list[Path] = field(default_factory=list)
    optional_columns: frozenset[str] = frozenset()  # of OPTIONAL_CANDIDATE_COLUMNS, those some part has
    select_stats: dict | None = None
    select_rejected: ds.Dataset | None = None
    selection: ds.Dataset | None = None
    manifest: dict | None = None

    @property
    def phases(self) -> list[str]:
        ran = {
            "score": self.score_stats is not None or bool(self.candidate_files),
            "select": self.select_stats is not None or self.selection is not None or self.select_rejected is not None,
            "write": self.manifest is not None,
        }
        return [phase for phase, done in ran.items() if done]

    def candidate_batches(self, columns: list[str]) -> Iterator[tuple[PartPosition, pa.RecordBatch]]:
        """Batches of these candidate columns (a nested leaf as `struct.field`), with where they were read; a column
        a part lacks reads as nulls."""
        return parquet_batches(self.candidate_files, columns, fill=_CANDIDATE_TYPES)

    def candidate_locations(self, found: dict[str, PartPosition]) -> dict[str, Location]:
        """(source, member) of candidate keys, each read back from the one row group it was found in."""
        by_group: dict[PartPosition, list[str]] = {}
        for key, position in found.items():
            by_group.setdefault(position, []).append(key)
        locations = {}
        for (i, group), keys in sorted(by_group.items()):
            with pq.ParquetFile(self.candidate_files[i]) as part:
                table = part.read_row_group(group, columns=["key", "source", "member"])
            table = table.filter(pc.is_in(table["key"], pa.array(keys, pa.string())))
            for key, source, member in zip(*(table[c].to_pylist() for c in ("key", "source", "member")), strict=True):
                locations[key] = (source, member)
        return locations


def dataset_batches(dataset: ds.Dataset | None, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Batches of a selection / rejected dataset, file by file; nothing when it is absent or has no parts."""
    if dataset is None:
        return
    parts = [f for f in dataset.files if f.endswith(".parquet")]  # not a `.partial` file a killed writer left
    for _, batch in parquet_batches(parts, columns):
        yield batch


def parquet_batches(
    paths: Sequence[str | Path], columns: list[str], *, fill: pa.Schema | None = None
) -> Iterator[tuple[PartPosition, pa.RecordBatch]]:
    """Batches of the columns, file by file and row group by row group, read in this thread: a dataset scanner's
    read-ahead outruns a slower consumer and queues up most of the data. A column a file lacks reads as nulls of its
    type in `fill`; without `fill` it is an error."""
    for i, path in enumerate(paths):
        with pq.ParquetFile(path) as part:
            present = set(part.schema_arrow.names)
            read = [c for c in columns if fill is None or c.split(".")[0] in present]
            for group in range(part.metadata.num_row_groups):
                for batch in part.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=read):
                    yield (i, group), batch if fill is None else _with_nulls(batch, columns, fill)


def _with_nulls(batch: pa.RecordBatch, columns: Iterable[str], types: pa.Schema) -> pa.RecordBatch:
    arrays, names = [], []
    for column in columns:
        top = column.split(".")[0]
        if top in names:
            continue
        names.append(top)
        index = batch.schema.get_field_index(top)
        arrays.append(batch.column(index) if index >= 0 else pa.nulls(batch.num_rows, types.field(top).type))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-run the phase that writes it") from e


def _dataset(path: Path) -> ds.Dataset | None:
    """A single parquet file or a directory of parquet part files (the select phase writes either)."""
    if not path.exists():
        return None
    try:
        return ds.dataset(path, format="parquet")
    except pa.ArrowInvalid as e:
        raise ValueError(f"{path} is not readable parquet ({e}); re-run the select phase that writes it") from e


def _optional_columns(files: list[Path]) -> set[str]:
    """The optional columns some part has; stops at the first part with all of them (one footer in a new run)."""
    found: set[str] = set()
    for path in files:
        found |= set(pq.read_schema(path).names) & set(OPTIONAL_CANDIDATE_COLUMNS)
        if len(found) == len(OPTIONAL_CANDIDATE_COLUMNS):
            break
    return found


def load_run_inputs(run_dir: Path) -> RunInputs:
    run_dir = Path(run_dir)
    config_path = run_dir / RUN_CONFIG
    files = sorted(run_dir.glob(CANDIDATES_GLOB))
    optional = _optional_columns(files)
    inputs = RunInputs(
        run_dir=run_dir,
        run_config=OmegaConf.load(config_path) if config_path.exists() else None,
        score_stats=_json(run_dir / SCORE_STATS),
        candidate_files=files,
        optional_columns=frozenset(optional),
        select_stats=_json(run_dir / SELECT_STATS),
        select_rejected=_dataset(run_dir / SELECT_REJECTED),
        selection=_dataset(run_dir / SELECTION),
        manifest=_json(run_dir / MANIFEST),
    )
    if inputs.phases:
        log.info("run %s: phases %s; %d candidate files", run_dir, inputs.phases, len(files))
    return inputs
