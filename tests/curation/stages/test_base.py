from typing import ClassVar

import pyarrow as pa
import pytest

from curation.stages.base import REJECT_REASON, STAGE_SECONDS, WOULD_REJECT, Stage, StageResult


class Parity(Stage):
    """Rejects odd values; remembers what it was given."""

    name = "parity"
    fields: ClassVar[list[pa.Field]] = [pa.field("half", pa.float32())]
    reasons = ("odd",)

    def __init__(self, mode="reject", fail_on=None):
        super().__init__()
        self.mode, self.fail_on, self.seen, self.setups = mode, fail_on, [], 0

    def setup(self):
        self.setups += 1

    def process(self, batch):
        values = batch["value"].to_pylist()
        self.seen.append(values)
        if self.fail_on in values:
            raise RuntimeError("model crashed")
        return StageResult(
            columns={"half": [v / 2 for v in values]}, **self.verdicts([v % 2 == 1 for v in values], "odd", self.mode)
        )


def batch(values, reasons=None):
    return pa.table(
        {
            "key": [f"k{v}" for v in values],
            "value": values,
            REJECT_REASON: pa.array(reasons or [None] * len(values), pa.string()),
        }
    )


def test_rejects_skip_earlier_rejections_and_first_reason_wins():
    stage = Parity()
    out = stage(batch([1, 2, 3, 4], [None, None, "too_small", None]))
    assert stage.seen == [[1, 2, 4]]  # the already rejected row never reaches the model
    assert out[REJECT_REASON].to_pylist() == ["odd", None, "too_small", None]
    assert out["half"].to_pylist() == [0.5, 1.0, None, 2.0]
    assert out[WOULD_REJECT].to_pylist() == [None, None, None, None]
    assert out.num_rows == 4 and out.column_names[:3] == ["key", "value", REJECT_REASON]


def test_audit_mode_keeps_rows_and_records_the_decision():
    out = Parity(mode="audit")(batch([1, 2, 3]))
    assert out[REJECT_REASON].to_pylist() == [None, None, None]
    assert out[WOULD_REJECT].to_pylist() == [["odd"], None, ["odd"]]
    # A second audit stage appends to the list instead of replacing it.
    again = Parity(mode="audit")(out.drop_columns(["half"]))
    assert again[WOULD_REJECT].to_pylist() == [["odd", "odd"], None, ["odd", "odd"]]


def test_exception_marks_the_batch_and_the_run_goes_on(caplog):
    stage = Parity(fail_on=4)
    out = stage(batch([2, 4, 6], [None, None, "empty_file"]))
    assert out[REJECT_REASON].to_pylist() == ["stage_error:parity", "stage_error:parity", "empty_file"]
    assert out["half"].null_count == 3
    assert "k2" in caplog.text and "model crashed" in caplog.text
    assert stage(batch([8]))[REJECT_REASON].to_pylist() == [None]  # the next batch is processed normally


def test_wrong_length_result_is_a_stage_error():
    class Short(Parity):
        def process(self, batch):
            return StageResult(columns={"half": [0.0]})

    assert Short()(batch([2, 4]))[REJECT_REASON].to_pylist() == ["stage_error:parity"] * 2


def test_setup_runs_once_and_time_accumulates_per_stage():
    stage = Parity()
    first = stage(batch([2, 4]))
    stage(batch([6]))
    assert stage.setups == 1

    class Other(Parity):
        name = "other"

    both = Other()(first.drop_columns(["half"]))
    timings = [dict(m) for m in both[STAGE_SECONDS].to_pylist()]
    assert [sorted(t) for t in timings] == [["other", "parity"], ["other", "parity"]]
    assert all(t["parity"] >= 0 and t["other"] >= 0 for t in timings)


def test_all_rejected_batch_skips_the_model():
    stage = Parity()
    out = stage(batch([1, 3], ["a", "b"]))
    assert stage.seen == [] and out[REJECT_REASON].to_pylist() == ["a", "b"]


@pytest.mark.parametrize("mode", ["reject", "audit"])
def test_verdicts_shape(mode):
    kwargs = Stage.verdicts([True, False], "x", mode)
    assert kwargs == ({"reject": ["x", None]} if mode == "reject" else {"would_reject": ["x", None]})
