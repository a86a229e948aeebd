"""The `humans1b` command. Each subcommand is a module in `pipelines/commands` with NAME, HELP, add_arguments, run."""

import argparse
import errno
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from common.errors import UsageError
from common.log import configure_logging
from pipelines.interrupts import Interrupted, signals_raise

# Modules under pipelines.commands, in the order `humans1b --help` lists them.
COMMANDS = ["sample_data", "curate", "pretrain", "posttrain", "demo", "ray_local", "stats", "models"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="humans1b", description="Humans-1B: curation, pretraining, post-training.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"pipelines.commands.{name}")
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling a positional list at the first option, so `curate select --config F a=1` leaves `a=1`
    # over: trailing KEY=VALUE words still belong to the overrides.
    if extra and (not hasattr(args, "overrides") or any(word.startswith("-") for word in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        with signals_raise():  # Ctrl-C / SIGTERM unwind through every `with`: Ray stops, partial files stay partial
            return int(args.run(args) or 0)
    except Interrupted as stop:
        return _one_line(
            args.command, f"stopped by {stop}; finished work is kept: run the same command to resume", stop.exit_code
        )
    except UsageError as err:  # the message names the key, file or flag to change; a traceback adds nothing
        return _one_line(args.command, str(_unwrap(err)), 2)
    except (OSError, *_ray_task_errors()) as err:  # a disk problem: one line; anything else keeps its traceback
        found = disk_error(err)
        if found is None:
            raise
        return _one_line(args.command, *found)


def disk_error(err: BaseException) -> tuple[str, int] | None:
    """(message, exit status) for a full disk or a path that cannot be written, in `err` or what it wraps (a Ray
    task's error included); None for anything else, which is a bug to show in full.

    A full disk is the machine's state: status 1. A permission or read-only error on a path this process was given
    is how the command was called: status 2; raised inside a Ray task, the path may be the worker's own: status 1.
    """
    in_task = False
    for cause in _chain(err):
        in_task = in_task or _is_ray_task_error(cause)
        if not isinstance(cause, OSError) or _is_ray_task_error(cause):
            continue
        path = cause.filename
        if cause.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f"writing {path}" if path is not None else "(no file named)"
            return f"{os.strerror(cause.errno).lower()} {where}: free space or choose another output=", 1
        if cause.errno == errno.EROFS and path is not None:
            return f"cannot write {path}: read-only file system; choose another output=", 1 if in_task else 2
        if isinstance(cause, PermissionError) and path is not None:
            return f"permission denied: {path}; make it writable or choose another output=", 1 if in_task else 2
    return None


def _one_line(command: str, message: str, status: int) -> int:
    sys.stderr.write(f"humans1b {command}: {' '.join(message.split())}\n")
    return status


def _chain(err: BaseException) -> list[BaseException]:
    """`err`, then what it wraps on purpose (a Ray task error's cause, `raise ... from`), each once. Not what it
    was raised while handling: a bug in a clean-up must keep its own traceback."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [err]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [getattr(current, "cause", None) if _is_ray_task_error(current) else None, current.__cause__]
    return seen


def _unwrap(err: BaseException) -> BaseException:
    """A UsageError raised inside a Ray task reaches the driver wrapped; its own message is the one to print."""
    while _is_ray_task_error(err) and isinstance(getattr(err, "cause", None), BaseException):
        err = err.cause
    return err


def _ray_task_errors() -> tuple[type[BaseException], ...]:
    """Ray's task error class when Ray is loaded (only then can one be raised); importing Ray costs seconds."""
    module = sys.modules.get("ray.exceptions")
    return (module.RayTaskError,) if module is not None else ()


def _is_ray_task_error(err: BaseException) -> bool:
    return isinstance(err, _ray_task_errors())


if __name__ == "__main__":
    sys.exit(main())
