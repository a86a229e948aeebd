"""Errors the `humans1b` command reports as one line instead of a traceback.

A UsageError is a mistake in how a command was called (a key, a path, a value): its message says what to change,
and the command exits with status 2. Library code raises it (or a subclass) where the cause is the caller's input.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager


class UsageError(Exception):
    """The command cannot run as called; the message names the key, file or flag to change."""


@contextmanager
def naming_path(path: str | os.PathLike) -> Iterator[None]:
    """Give an OSError raised without a file name (a write() on a full disk names none) the path being written, so
    the one-line report of a disk error can say where."""
    try:
        yield
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        raise OSError(err.errno, err.strerror or str(err), os.fspath(path)) from err


class InputNotFoundError(UsageError, FileNotFoundError):
    """An input path the command was given that does not exist or holds nothing to read."""
