"""Errors the `humans1b` command reports as one line instead of a traceback.

A UsageError is a mistake in how a command was called (a key, a path, a value): its message says what to change,
and the command exits with status 2. Library code raises it (or a subclass) where the cause is the caller's input.
"""


class UsageError(Exception):
    """The command cannot run as called; the message names the key, file or flag to change."""
