"""How the `humans1b` command stops on SIGINT (Ctrl-C) and SIGTERM (a scheduler, `kill`).

The signal becomes an exception in the main thread, so every `with` block on the way out runs: a Ray session shuts
its local head down, writers leave only `.partial` files, completion markers are never half-written. The command
then prints one line and exits 128 + the signal number (130, 143), the shell convention; a re-run resumes. A
second signal while that clean-up runs stops the process at once, the default way.
"""

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT / SIGTERM. A BaseException, like KeyboardInterrupt, so no `except
    Exception` on the way out can swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_interrupted(signum: int, frame: object) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    raise Interrupted(signum)


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted inside the block; the previous handlers come back after it."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
