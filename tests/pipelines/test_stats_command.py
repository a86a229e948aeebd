import argparse
import json

import pyarrow as pa
import pyarrow.parquet as pq

from common.schemas import candidate_schema
from pipelines.cli import COMMANDS
from pipelines.commands import stats as stats_command


def main(argv: list[str]) -> int:
    """What `humans1b stats ...` runs (pipelines/cli.py), without importing every other command."""
    assert argv[0] == stats_command.NAME and "stats" in COMMANDS
    parser = argparse.ArgumentParser(prog=f"humans1b {stats_command.NAME}")
    stats_command.add_arguments(parser)
    return stats_command.run(parser.parse_args(argv[1:]))


def score_only_run(run):
    """The smallest score-phase output: two candidates, one rejected, and its stats.json."""
    (run / "candidates").mkdir(parents=True)
    rows = [
        {
            "key": "a",
            "source": str(run / "a.jpg"),
            "width": 640,
            "height": 480,
            "aesthetic": 5.5,
            "reject_reason": None,
        },
        {"key": "b", "source": str(run / "b.jpg"), "width": 100, "height": 80, "reject_reason": "too_small"},
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=candidate_schema(8)), run / "candidates" / "part-00000.parquet")
    stages = {
        "read": {"in": 2, "kept": 2, "rejected": {}, "would_reject": {}},
        "decode": {"in": 2, "kept": 1, "rejected": {"too_small": 1}, "would_reject": {}},
    }
    stats = {"rows_in": 2, "kept": 1, "rejected": {"too_small": 1}, "stages": stages, "shards": 1}
    (run / "stats.json").write_text(json.dumps(stats))


def test_stats_writes_the_report_and_prints_its_path(tmp_path, capsys):
    run = tmp_path / "run"
    score_only_run(run)
    assert main(["stats", str(run), "--top-clusters", "2", "--thumb-size", "48"]) == 0
    html = run / "report" / "index.html"
    assert f"report: {html}" in capsys.readouterr().out
    assert html.exists() and (run / "report" / "stats.json").exists()
    stats = json.loads((run / "report" / "stats.json").read_text())
    assert [r["kept"] for r in stats["funnel"]] == [2, 1]


def test_stats_on_a_dir_without_phase_output_exits_2(tmp_path, capsys):
    assert main(["stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no curation output" in err and "stats.json" in err
    assert not (tmp_path / "report").exists()
    assert main(["stats", str(tmp_path / "missing")]) == 2
    assert main(["stats", str(tmp_path), "--thumb-size", "4"]) == 2
    assert "thumb_size" in capsys.readouterr().err
