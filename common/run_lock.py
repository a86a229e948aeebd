"""One run per output directory: `<output>/.humans1b.lock`, held by the driver for the whole command.

The lock is `fcntl.flock(LOCK_EX | LOCK_NB)` on the open lock file. The kernel drops it when the process ends, however
it ends, so a lock file left by a killed run is free: the next run takes it over and logs the previous holder named
in the file. The content is JSON naming the holder (pid, host, start time in ISO 8601, command line), so a second run
that finds the lock taken says whom to wait for. A run that ends normally removes the file while it still holds the
lock; a run that then locks a file it opened just before the removal sees that the path no longer leads to that file
and starts over, so two runs never hold locks on two different files of the same name.

Only the process that takes the lock holds it. The file is opened close-on-exec, so the Ray head, workers and any
other program the driver starts never inherit it: the score, select and write tasks they run need no lock of
their own, and a Ray head left running after the driver does not keep the directory locked.

Caveats: flock is a lock of the kernel that takes it. On NFS it reaches other hosts only where client and server run
the lock manager (lockd, or NFSv4 locking); without it flock fails (ENOLCK), or on old clients locks on the local
host only, so two hosts writing into one NFS directory may not see each other's lock. Object stores (S3, GCS, also
when mounted through FUSE) have no shared lock at all. When the file system refuses the lock, the run goes on with a
WARNING: nothing then keeps a second run out of that directory.
"""

import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.errors import UsageError

log = logging.getLogger(__name__)

LOCK_NAME = ".humans1b.lock"
_MAX_HOLDER_BYTES = 1 << 16
_ATTEMPTS = 20  # each retry means another run removed the file between our open and our lock: rare, never endless


class OutputInUseError(UsageError):
    """Another run holds the output directory's lock."""


def holder_record(command: Sequence[str] | None = None) -> dict[str, Any]:
    """Who holds the lock: this process, its host, when it started and its command line."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv if command is None else command),
    }


def describe_holder(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "a run that has not written its name into the lock file yet"
    return (
        f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('started')} "
        f"(command {holder.get('command')})"
    )


@contextmanager
def output_lock(output: str | os.PathLike, *, command: Sequence[str] | None = None) -> Iterator[dict[str, Any] | None]:
    """Hold `<output>/.humans1b.lock` for the `with` block; yields the holder record written into it (None when the
    file system refused the lock). Raises OutputInUseError, naming the holder, when another run holds it."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = _lock(path, out)
    if fd is None:
        yield None
        return
    try:
        previous = _read_holder(fd)
        if previous is not None:
            log.info(
                "%s: taking over the lock left by %s, which ended without releasing it", out, describe_holder(previous)
            )
        holder = holder_record(command)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        yield holder
    finally:
        if _is_current(fd, path):  # removed while still locked (see the module docstring), never someone else's file
            path.unlink()
        os.close(fd)  # releases the lock; a killed run releases it the same way, by dying


def _lock(path: Path, out: Path) -> int | None:
    """An open descriptor of `path` holding the lock; None when the file system cannot lock."""
    for _ in range(_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputInUseError(
                f"{out} is in use by {describe_holder(holder)}: wait for it or choose another output="
            ) from None
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            log.warning(
                "%s cannot be locked on this file system (%s): nothing keeps a second run out of %s; run one at a time",
                path,
                os.strerror(err.errno),
                out,
            )
            return None
        if _is_current(fd, path):
            return fd
        os.close(fd)  # a run that ended removed this file between our open and our lock: open the path again
    raise RuntimeError(f"{path} kept being replaced while this run took it: are runs starting and ending in a loop?")


def _is_current(fd: int, path: Path) -> bool:
    """True when `path` still names the file open on `fd` (a finished run may have removed it meanwhile)."""
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def _read_holder(fd: int) -> dict[str, Any] | None:
    data = os.pread(fd, _MAX_HOLDER_BYTES, 0)
    if not data:
        return None
    try:
        holder = json.loads(data)
    except ValueError:  # written by something else, or being written right now
        return {"pid": "?", "host": "?", "started": "?", "command": f"unreadable lock file content {data[:80]!r}"}
    return holder if isinstance(holder, dict) else None
