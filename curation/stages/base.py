"""The curation stage contract (DESIGN.md "Contracts").

A stage is a class whose __init__ stores settings only (it is pickled to Ray workers); models load in setup(),
once per actor, on the first batch. __call__ takes a pyarrow batch, runs process() on the rows no earlier stage
rejected, and returns every input row with the stage's columns added. The base owns what every stage needs:
skipping rejected rows, first-rejection-wins, audit mode, timing, and turning an exception into
`stage_error:<name>` on the batch's rows instead of a dead run.
"""

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc

from common.reasons import stage_error
from curation.stages.resources import StageResources
from curation.stages.stage_nodes import with_node

log = logging.getLogger(__name__)

FilterMode = Literal["reject", "audit"]
REJECT_REASON = "reject_reason"
WOULD_REJECT = "would_reject"
STAGE_SECONDS = "stage_seconds"  # map<stage, seconds>: the batch's time spread over its rows; summed by the runner
STAGE_SECONDS_TYPE = pa.map_(pa.string(), pa.float64())


@dataclass
class StageResult:
    """What process() returns for the n rows it was given: columns of length n, optional verdicts."""

    columns: dict[str, list[Any] | pa.Array]
    reject: list[str | None] | None = None  # reason per row, None = kept
    would_reject: list[str | None] | None = None  # audit-mode verdicts that keep the row


class Stage(ABC):
    name: ClassVar[str]
    fields: ClassVar[list[pa.Field]]  # the columns this stage adds, in order
    reasons: ClassVar[tuple[str, ...]] = ()  # every reason it may give, so counts map back to stages
    needs_model: ClassVar[bool] = False  # True: an actor pool, setup() once per actor

    def __init__(self, resources: StageResources | None = None) -> None:
        self.resources = resources or StageResources()
        self._ready = False

    def setup(self) -> None:  # noqa: B027 - optional hook: model-free stages have nothing to load
        """Load models. Runs inside the worker, once, before the first batch."""

    @abstractmethod
    def process(self, batch: pa.Table) -> StageResult:
        """Work on rows that are still kept; must return one value per row for every declared field."""

    @staticmethod
    def verdicts(fails: list[bool], reason: str, mode: FilterMode) -> dict[str, list[str | None]]:
        """StageResult keyword arguments for a filter: reject in `reject` mode, record only in `audit` mode."""
        return Stage.route([reason if fail else None for fail in fails], mode)

    @staticmethod
    def route(reasons: list[str | None], mode: FilterMode) -> dict[str, list[str | None]]:
        """Per-row reasons (None = passes) as rejections in `reject` mode or audit records in `audit` mode."""
        return {"reject": reasons} if mode == "reject" else {"would_reject": reasons}

    def __call__(self, batch: pa.Table) -> pa.Table:
        if not self._ready:
            self.setup()
            self._ready = True
        start = time.perf_counter()
        alive = pc.is_null(batch[REJECT_REASON]).to_numpy(zero_copy_only=False)
        positions = alive.nonzero()[0]
        values: dict[str, list[Any]] = {f.name: [None] * batch.num_rows for f in self.fields}
        reasons = batch[REJECT_REASON].to_pylist()
        would = batch[WOULD_REJECT].to_pylist() if WOULD_REJECT in batch.column_names else [None] * batch.num_rows
        if len(positions):
            try:
                result = self.process(batch.take(positions))
                self._merge(result, positions, values, reasons, would)
            except Exception as err:  # model code can raise anything; the run must go on
                keys = batch["key"].take(positions).to_pylist()
                log.error(
                    "stage %s failed on a batch of %d rows (keys %s ...): %r", self.name, len(keys), keys[:5], err
                )
                for i in positions:
                    reasons[i] = stage_error(self.name)
        out = batch
        for f in self.fields:
            out = _set_column(out, f.name, pa.array(values[f.name], f.type))
        out = _set_column(out, REJECT_REASON, pa.array(reasons, pa.string()))
        out = _set_column(out, WOULD_REJECT, pa.array(would, pa.list_(pa.string())))
        return with_node(self._add_time(out, time.perf_counter() - start), self.name)

    def _merge(self, result: StageResult, positions, values, reasons, would) -> None:
        n = len(positions)
        for f in self.fields:
            column = result.columns[f.name]
            column = column.to_pylist() if isinstance(column, pa.Array | pa.ChunkedArray) else list(column)
            if len(column) != n:
                raise ValueError(f"stage {self.name} returned {len(column)} values for {f.name}, expected {n}")
            for i, v in zip(positions, column, strict=True):
                values[f.name][i] = v
        for i, reason in zip(positions, result.reject or [None] * n, strict=True):
            if reason is not None:
                reasons[i] = reason
        for i, reason in zip(positions, result.would_reject or [None] * n, strict=True):
            if reason is not None:
                would[i] = [*(would[i] or []), reason]

    def _add_time(self, table: pa.Table, seconds: float) -> pa.Table:
        per_row = seconds / max(table.num_rows, 1)
        old = table[STAGE_SECONDS].to_pylist() if STAGE_SECONDS in table.column_names else [None] * table.num_rows
        new = [[*(dict(m).items() if m else []), (self.name, per_row)] for m in old]
        return _set_column(table, STAGE_SECONDS, pa.array(new, STAGE_SECONDS_TYPE))


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, values) if i >= 0 else table.append_column(name, values)
