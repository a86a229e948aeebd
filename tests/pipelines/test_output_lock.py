"""`humans1b curate` holds its output directory: a second run exits 2 naming the holder; a killed holder's lock is
taken over; the lock is released when the command ends."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from common.run_lock import LOCK_NAME
from tests.common.test_run_lock import start_holder
from tests.curation.select.test_select_runner import write_candidates

REPO = Path(__file__).resolve().parents[2]


def select(out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipelines.cli", "curate", "select"]
    command += ["--config", str(REPO / "configs/curation/demo.yaml"), f"output={out}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ})


def test_a_second_run_exits_2_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    write_candidates(out)
    holder = start_holder(out)
    try:
        held = json.loads((out / LOCK_NAME).read_text())
        proc = select(out)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"humans1b curate: {out} is in use by pid {holder.pid} on host {socket.gethostname()} since "
        f"{held['started']} (command holder --of {out}): wait for it or choose another output="
    ]
    assert proc.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, "candidates", "stats.json"]  # nothing written


def test_a_killed_holders_lock_is_taken_over_and_released_at_the_end(tmp_path):
    out = tmp_path / "run"
    write_candidates(out)
    holder = start_holder(out)
    held = json.loads((out / LOCK_NAME).read_text())
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL

    first = select(out)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.startswith("select: 155 rows in, ")
    took_over = [line for line in first.stderr.splitlines() if "taking over the lock" in line]
    assert len(took_over) == 1 and took_over[0].split(" INFO common.run_lock: ")[1] == (
        f"{out}: taking over the lock left by pid {holder.pid} on host {socket.gethostname()} since "
        f"{held['started']} (command holder --of {out}), which ended without releasing it"
    )
    assert not (out / LOCK_NAME).exists()

    second = select(out)  # the first released the lock when it ended
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout == first.stdout
    assert "taking over the lock" not in second.stderr
    assert not (out / LOCK_NAME).exists()
