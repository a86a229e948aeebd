"""bench/select_scale.py without the select phase itself: reusing and clearing the run folder, and measuring the
peak RSS of every process of a command."""

import json
import os
import subprocess
import sys

import psutil
import pytest

from tests.bench.scripts import BENCH, select_scale

PARAMS = {"rows": 600, "dim": 8, "seed": 0, "rows_per_part": 250, "components": 5}


def test_a_run_is_reused_and_select_outputs_are_cleared(tmp_path):
    data = tmp_path / "run"
    record, reused = select_scale.prepare_run(data, PARAMS, progress=False)
    assert not reused and record["parts"] == 3 and record["finished"]
    part = data / "candidates" / "part-00001.parquet"
    written = part.stat().st_mtime_ns
    (data / "select" / "phash_dedup").mkdir(parents=True)
    (data / "select" / "phash_dedup" / "part-00000.parquet").write_bytes(b"x")
    for name in ("selection.parquet", "select_stats.json", "spill.tmp"):
        (data / name).write_text("{}")

    again, reused = select_scale.prepare_run(data, PARAMS, progress=False)
    assert reused and again == record
    assert sorted(p.name for p in data.iterdir()) == [
        "candidates",
        "config.yaml",
        "planted",
        "stats.json",
        "synthetic.json",
    ]
    assert part.stat().st_mtime_ns == written

    other, reused = select_scale.prepare_run(data, {**PARAMS, "rows": 700}, progress=False)
    assert not reused and other["rows"] == 700 and other["parts"] == 3

    part.write_bytes(part.read_bytes()[:-10])  # a damaged part is not reused
    _, reused = select_scale.prepare_run(data, {**PARAMS, "rows": 700}, progress=False)
    assert not reused
    assert json.loads((data / "candidates" / "part-00001.done.json").read_text())["files"][part.name]["bytes"] == (
        part.stat().st_size
    )


def test_a_folder_that_is_not_synthetic_is_left_alone(tmp_path):
    (tmp_path / "candidates").mkdir()
    (tmp_path / "stats.json").write_text("{}")
    with pytest.raises(select_scale.NotSyntheticError, match=r"holds no synthetic\.json"):
        select_scale.prepare_run(tmp_path, PARAMS, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates", "stats.json"]


# The driver starts a child that holds MIB MiB for a second, waits for it, then leaves a sleeper behind.
MIB = 700  # well above the measuring interpreter's own peak (~210 MiB with its imports)
CHILD = f"import time; block = b'1' * ({MIB} << 20); time.sleep(1.0)"
DRIVER = f"""
import subprocess, sys
subprocess.run([sys.executable, "-c", {CHILD!r}], check=True)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
sys.exit(3)
"""


# Measured from a fresh interpreter: the driver's ru_maxrss starts at the peak of the process that launches it.
# ... started by a small launcher: an interpreter forked from pytest itself would begin at pytest's peak
LAUNCH = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
MEASURE = """
import dataclasses, json, os, sys
sys.path.insert(0, sys.argv[1])
import select_scale
select_scale.LEFTOVER_GRACE = 0.5
measured = select_scale.run_measured([sys.executable, "-c", sys.argv[2]], env=dict(os.environ), cwd=sys.argv[3])
import resource
measurer = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({**dataclasses.asdict(measured), 'measurer_mib': measurer}))
"""


def test_peak_rss_of_a_grandchild_is_caught_and_leftovers_are_ended(tmp_path):
    before = {p.pid for p in psutil.process_iter()}
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, sys.executable, "-c", MEASURE, str(BENCH), DRIVER, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    measured = json.loads(done.stdout.splitlines()[-1])
    assert measured["returncode"] == 3
    assert MIB <= measured["peak_mib"] < MIB + 100
    assert "ru_maxrss" not in measured["peak_process"]  # seen by polling, not only in the driver's rusage
    assert measured["measurer_mib"] < MIB  # else the driver's ru_maxrss could not rise above what it inherits
    assert measured["peak_total_mib"] >= MIB and MIB <= measured["driver_maxrss_mib"] < MIB + 100
    assert measured["processes"] >= 3 and len(measured["leftovers"]) == 1
    assert measured["seconds"] >= 1.0
    assert [p for p in psutil.process_iter() if p.pid not in before and "time.sleep(60)" in command_line(p)] == []


def test_the_driver_maxrss_it_inherits_is_not_reported(tmp_path):
    ballast = b"1" * (400 << 20)  # this process now peaks above anything the driver does
    measured = select_scale.run_measured([sys.executable, "-c", "pass"], env=dict(os.environ), cwd=tmp_path)
    assert len(ballast) and measured.returncode == 0
    assert measured.driver_maxrss_mib is None and measured.peak_mib < 100


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie
        return ""


def test_last_line_and_overrides(tmp_path):
    command = select_scale.select_command(tmp_path, [20, 5, 2], ["select.sampling.fraction=0.5"])
    assert command[1:] == [
        "curate",
        "select",
        f"output={tmp_path}",
        "select.clusters.levels=3",
        "select.clusters.clusters=[20,5,2]",
        "select.sampling.fraction=0.5",
    ]
    args = select_scale.parse_args(["--rows", "10", "--set", "a=1", "b=2", "--set", "c=3"])
    assert args.overrides == ["a=1", "b=2", "c=3"] and args.clusters == [1000, 100, 10]
