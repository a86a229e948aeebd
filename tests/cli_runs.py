"""Running the real `humans1b` command in tests, and reading what a failed one printed: its one error line, checked
against the rules of pipelines/cli.py (no traceback, the error last and only once)."""

import os
import re
import subprocess
import sys
from pathlib import Path

from curation.sample_corpus.sources import photo_path

REPO = Path(__file__).resolve().parents[1]
HUMANS1B = Path(sys.executable).parent / "humans1b"  # the entry point of the venv running the tests
DEMO_CONFIG = REPO / "configs" / "curation" / "demo.yaml"


def humans1b(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`humans1b ARGS` from the repository root; `env` defaults to this process's (the offline switches included)."""
    return subprocess.run(
        [str(HUMANS1B), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ} if env is None else env,
        timeout=timeout,
        check=False,
    )


def photo_folder(folder: Path, *names: str) -> Path:
    """`folder` holding the named package-shipped photos (bus, zidane, ...) as NAME.jpg."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.jpg").write_bytes(photo_path(name).read_bytes())
    return folder


LOG_RECORD = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO) [\w.]+: ")  # common.log's format: progress, not the error


def one_line(proc: subprocess.CompletedProcess, status: int = 2) -> str:
    """The only non-empty stderr line of a command that failed with `status` (a command that logged nothing: one that
    fails at config load, before any Ray head could start and log)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == status and len(lines) == 1, (proc.returncode, proc.stderr)
    return lines[0]


def error_line(stderr: str) -> str:
    """The one line a command reports its error with, when everything else on stderr is its own INFO log records."""
    assert "Traceback" not in stderr, stderr
    (line,) = [line for line in stderr.splitlines() if not LOG_RECORD.match(line)]
    assert stderr.splitlines()[-1] == line
    return line


def last_line(proc: subprocess.CompletedProcess, status: int) -> str:
    """A run that started Ray logs as it goes (Ray's own lines too); its error is still one line, the last, and there
    is no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == status, (proc.returncode, proc.stderr[-3000:])
    errors = [line for line in lines if line.startswith("humans1b ")]
    assert errors == [lines[-1]], proc.stderr[-3000:]
    return lines[-1]
