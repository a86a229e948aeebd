"""One run per output directory: a second holder is refused naming the first; a killed holder's lock is taken over."""

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime

import pytest

from common.errors import UsageError
from common.run_lock import LOCK_NAME, OutputInUseError, _is_current, output_lock

HOLD = """
import sys, time
from common.run_lock import output_lock
with output_lock(sys.argv[1], command=["holder", "--of", sys.argv[1]]):
    print("locked", flush=True)
    time.sleep(600)
"""


def start_holder(out) -> subprocess.Popen:
    """A process that holds the lock of `out` until it is killed; returns once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert proc.stdout.readline() == "locked\n"
    return proc


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    with output_lock(tmp_path, command=["humans1b", "curate", f"output={tmp_path}"]) as holder:
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert datetime.fromisoformat(holder["started"]).tzinfo is not None
        assert json.loads((tmp_path / LOCK_NAME).read_text()) == holder
        # A second open file description in the same process conflicts exactly as another process would.
        with pytest.raises(OutputInUseError) as err, output_lock(tmp_path):
            pytest.fail("the lock was taken twice")
        assert isinstance(err.value, UsageError)
        assert str(err.value) == (
            f"{tmp_path} is in use by pid {os.getpid()} on host {socket.gethostname()} since {holder['started']} "
            f"(command humans1b curate output={tmp_path}): wait for it or choose another output="
        )
        assert json.loads((tmp_path / LOCK_NAME).read_text()) == holder  # the refused run changed nothing
    assert not (tmp_path / LOCK_NAME).exists()  # released and removed at the end of the block
    with output_lock(tmp_path), pytest.raises(RuntimeError, match="boom"):
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()  # released on an error too
    with output_lock(tmp_path) as again:
        assert again["pid"] == os.getpid()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, caplog):
    out = tmp_path / "new" / "run"  # made by the lock, like the output of a first run
    holder = start_holder(out)
    with pytest.raises(OutputInUseError, match=f"in use by pid {holder.pid} on host "), output_lock(out):
        pass
    left = json.loads((out / LOCK_NAME).read_text())
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    assert json.loads((out / LOCK_NAME).read_text()) == left  # the file stays; the kernel dropped the lock

    with caplog.at_level(logging.INFO, logger="common.run_lock"), output_lock(out) as mine:
        assert json.loads((out / LOCK_NAME).read_text()) == mine
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "common.run_lock"] == [
        (
            "INFO",
            f"{out}: taking over the lock left by pid {holder.pid} on host {socket.gethostname()} since "
            f"{left['started']} (command holder --of {out}), which ended without releasing it",
        )
    ]
    assert not (out / LOCK_NAME).exists()


def test_a_lock_on_a_removed_file_is_not_taken_for_the_directory(tmp_path):
    """Why a run checks, after locking, that the path still names the file it opened: a run that opened the file
    just before its holder ended and removed it can lock the removed file while a third run holds the new one."""
    with output_lock(tmp_path):
        stale = os.open(tmp_path / LOCK_NAME, os.O_RDWR)  # opened before the holder ends
    try:
        with output_lock(tmp_path) as third:
            fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds: nobody else locks the removed file
            assert not _is_current(stale, tmp_path / LOCK_NAME)
            assert json.loads((tmp_path / LOCK_NAME).read_text()) == third
    finally:
        os.close(stale)
