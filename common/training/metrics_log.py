"""Training metrics: one JSON line per logged step in `metrics.jsonl`, and the float scalars to TensorBoard.

Only the main process writes; other ranks get a log that drops everything, so loops call it unconditionally.
"""

import json
from pathlib import Path
from typing import Any

METRICS = "metrics.jsonl"


class MetricsLog:
    def __init__(self, out: Path, *, tensorboard: bool, enabled: bool = True, prefix: str = "train") -> None:
        self.enabled, self.prefix = enabled, prefix
        self._sink = (Path(out) / METRICS).open("a") if enabled else None
        self._board = _summary_writer(Path(out)) if enabled and tensorboard else None

    def write(self, row: dict[str, Any]) -> None:
        """`row` must have a "step"; appended as JSON (flushed, so a kill loses no logged step)."""
        if self._sink is None:
            return
        self._sink.write(json.dumps(row) + "\n")
        self._sink.flush()
        if self._board is not None:
            for name, value in row.items():
                if isinstance(value, float):
                    self._board.add_scalar(f"{self.prefix}/{name}", value, row["step"])

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
        if self._board is not None:
            self._board.close()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_metrics(out: Path) -> list[dict[str, Any]]:
    path = Path(out) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _summary_writer(out: Path):
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when asked for

    return SummaryWriter(str(out / "tensorboard"))
