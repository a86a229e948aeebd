"""The `humans1b` command. Each subcommand is a module in `pipelines/commands` with NAME, HELP, add_arguments, run."""

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from common.errors import UsageError
from common.log import configure_logging

# Modules under pipelines.commands, in the order `humans1b --help` lists them.
COMMANDS = ["sample_data", "curate", "pretrain", "posttrain", "demo", "ray_local", "stats"]


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
        return int(args.run(args) or 0)
    except UsageError as err:  # the message names the key, file or flag to change; a traceback adds nothing
        sys.stderr.write(f"humans1b {args.command}: {err}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
