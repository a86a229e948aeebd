"""Reads whatever the curation phases have written into a run directory; a phase that has not run reads as None."""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

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

# Never `clip`: the report needs no embeddings, and they are most of a candidate file's bytes.
CANDIDATE_COLUMNS = [
    "width",
    "height",
    "max_person_short_side",
    "head_pose",
    "aesthetic",
    "realism",
    "text_overlay",
    "reject_reason",
]
OPTIONAL_CANDIDATE_COLUMNS = ["nsfw"]  # read when present: candidates scored before the nsfw stage have none
SELECTION_COLUMNS = ["key", "source", "member", "head_pose", "cluster_ids"]
REJECTED_COLUMNS = ["key", "reject_reason", "dup_of"]


@dataclass
class RunInputs:
    run_dir: Path
    run_config: DictConfig | None = None
    score_stats: dict | None = None
    candidate_files: list[Path] = field(default_factory=list)
    candidates: pa.Table | None = None  # CANDIDATE_COLUMNS (and the optional ones present) of every candidate row
    select_stats: dict | None = None
    select_rejected: pa.Table | None = None
    selection: pa.Table | None = None
    manifest: dict | None = None

    @property
    def phases(self) -> list[str]:
        ran = {
            "score": self.score_stats is not None or self.candidates is not None,
            "select": self.select_stats is not None or self.selection is not None or self.select_rejected is not None,
            "write": self.manifest is not None,
        }
        return [phase for phase, done in ran.items() if done]

    def candidate_locations(self, keys: Iterable[str]) -> dict[str, Location]:
        """(source, member) of the candidate rows with these keys; keys not found are absent."""
        wanted = sorted(set(keys))
        found: dict[str, Location] = {}
        if not wanted:
            return found
        for path in self.candidate_files:
            part = pq.read_table(path, columns=["key", "source", "member"], filters=pc.field("key").isin(wanted))
            for key, source, member in zip(*(part[c].to_pylist() for c in ("key", "source", "member")), strict=True):
                found[key] = (source, member)
        return found


def _json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-run the phase that writes it") from e


def _parquet(path: Path, columns: list[str]) -> pa.Table | None:
    return pq.read_table(path, columns=columns) if path.exists() else None


def _candidate_part(path: Path) -> pa.Table:
    present = set(pq.read_schema(path).names)
    return pq.read_table(path, columns=CANDIDATE_COLUMNS + [c for c in OPTIONAL_CANDIDATE_COLUMNS if c in present])


def load_run_inputs(run_dir: Path) -> RunInputs:
    run_dir = Path(run_dir)
    config_path = run_dir / RUN_CONFIG
    inputs = RunInputs(
        run_dir=run_dir,
        run_config=OmegaConf.load(config_path) if config_path.exists() else None,
        score_stats=_json(run_dir / SCORE_STATS),
        candidate_files=sorted(run_dir.glob(CANDIDATES_GLOB)),
        select_stats=_json(run_dir / SELECT_STATS),
        select_rejected=_parquet(run_dir / SELECT_REJECTED, REJECTED_COLUMNS),
        selection=_parquet(run_dir / SELECTION, SELECTION_COLUMNS),
        manifest=_json(run_dir / MANIFEST),
    )
    if inputs.candidate_files:
        parts = [_candidate_part(p) for p in inputs.candidate_files]
        inputs.candidates = pa.concat_tables(parts, promote_options="default")  # a column some parts lack: nulls
    if not inputs.phases:
        return inputs  # nothing to report: the caller says so, in one line
    log.info(
        "run %s: phases %s; %s candidate rows in %d files",
        run_dir,
        inputs.phases,
        inputs.candidates.num_rows if inputs.candidates is not None else 0,
        len(inputs.candidate_files),
    )
    return inputs
