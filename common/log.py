"""Logging set-up for entry points; library code only calls logging.getLogger(__name__)."""

import logging

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=_FORMAT, datefmt="%H:%M:%S", force=True)
