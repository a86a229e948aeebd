"""The report's aggregation holds a batch at a time, never a whole table: its peak Arrow memory on a run of many
parts stays far below what loading the columns it reads would take."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.schemas import HEAD_POSE_TYPE

ROWS, PARTS, ROW_GROUP = 240_000, 24, 2_000
BATCH = 2_000
ROOT = Path(__file__).resolve().parents[3]


def write_run(run: Path) -> None:
    """Candidates, selection and rejected rows, the last two as directories of part files."""
    rng = np.random.default_rng(0)
    for sub in ("candidates", "selection.parquet", "select/rejected.parquet"):
        (run / sub).mkdir(parents=True)
    per = ROWS // PARTS
    for i in range(PARTS):
        keys = pa.array([f"{i:03d}{j:09d}" for j in range(per)])
        yaw = pa.array(rng.choice(["frontal", "profile"], per))
        pose = pa.StructArray.from_arrays([yaw, pa.array(np.full(per, 3, np.int8))], fields=list(HEAD_POSE_TYPE))
        candidates = {
            "key": keys,
            "source": pa.array([f"/data/part-{i:05d}.tar"] * per),
            "member": keys,
            "width": pa.array(rng.integers(300, 4000, per, dtype=np.int32)),
            "height": pa.array(rng.integers(300, 4000, per, dtype=np.int32)),
            "max_person_short_side": pa.array(rng.uniform(0, 900, per).astype(np.float32)),
            "head_pose": pose,
            "reject_reason": pa.array(np.where(rng.random(per) < 0.1, "no_person", None).tolist(), pa.string()),
        }
        for score in ("aesthetic", "nsfw", "realism", "text_overlay"):
            candidates[score] = pa.array(rng.random(per).astype(np.float32))
        pq.write_table(pa.table(candidates), run / "candidates" / f"part-{i:05d}.parquet", row_group_size=ROW_GROUP)
        ids = rng.integers(0, 5, (per, 2)).astype(np.int32)
        selection = {k: candidates[k] for k in ("key", "source", "member", "head_pose")}
        selection["cluster_ids"] = pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1)), 2)
        pq.write_table(pa.table(selection), run / "selection.parquet" / f"{i}.parquet", row_group_size=ROW_GROUP)
        rejected = {"key": keys, "reject_reason": pa.array(["dup_phash"] * per), "dup_of": pa.array(keys[::-1])}
        pq.write_table(pa.table(rejected), run / "select/rejected.parquet" / f"{i}.parquet", row_group_size=ROW_GROUP)


def measure(run: str, out: str) -> None:
    """In a fresh process (Arrow's peak counter cannot be reset): the three scans; their peaks go to `out`."""
    import tracemalloc

    from curation.report import inputs as inputs_module
    from curation.report.candidate_scan import scan_candidates
    from curation.report.config import ReportConfig
    from curation.report.duplicates import scan_rejected
    from curation.report.selection_scan import scan_selection

    inputs_module.BATCH_ROWS = BATCH
    inputs = inputs_module.load_run_inputs(Path(run))
    pool = pa.default_memory_pool()
    before = pool.max_memory()
    tracemalloc.start()
    config = ReportConfig()
    rejected = scan_rejected(inputs, config)
    selection = scan_selection(inputs, config)
    wanted = {key for pairs in rejected.pairs.values() for pair in pairs for key in pair}
    candidates = scan_candidates(inputs, wanted)
    numpy_peak = tracemalloc.get_traced_memory()[1]
    result = {
        "arrow_peak": pool.max_memory(),
        "arrow_before": before,
        "numpy_peak": numpy_peak,
        "rows": [candidates.columns["width"].count, selection.rows, rejected.reasons["dup_phash"]],
        "found": len(candidates.found),
        "wanted": len(wanted),
    }
    Path(out).write_text(json.dumps(result))


def test_aggregation_peak_memory_is_a_fraction_of_the_tables(tmp_path):
    run = tmp_path / "run"
    write_run(run)
    candidates = pq.read_table(run / "candidates", columns=None)
    whole = candidates.drop_columns(["key", "source", "member"]).nbytes  # the columns the passes read
    whole_selection = pq.read_table(run / "selection.parquet").nbytes
    out = tmp_path / "peaks.json"
    code = f"from {__name__} import measure; measure({str(run)!r}, {str(out)!r})"  # run from ROOT
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    result = json.loads(out.read_text())
    assert result["rows"] == [ROWS, ROWS, ROWS]  # every row was seen
    assert result["found"] == result["wanted"] > 0
    assert result["arrow_before"] < 1 << 20  # nothing loaded before the scans: the peak is theirs
    # Loading the candidate columns whole (what the report did) would take `whole` bytes at once.
    assert whole > 8 << 20 and whole_selection > 8 << 20
    assert result["arrow_peak"] < whole / 4
