"""Test session set-up: nothing may reach beyond 127.0.0.1, so every library is switched to offline first."""

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from common.ray_bootstrap import RayHandle

# Set at import, before any test module imports ray or ultralytics: both read these once at import.
_YOLO_CONFIG_DIR = tempfile.mkdtemp(prefix="humans1b-yolo-")
atexit.register(shutil.rmtree, _YOLO_CONFIG_DIR, ignore_errors=True)
os.environ.update(
    {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_CONFIG_DIR": _YOLO_CONFIG_DIR,
        "HF_HUB_OFFLINE": "1",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
)


@pytest.fixture(scope="session")
def ray_local() -> Iterator["RayHandle"]:
    """One local Ray head on 127.0.0.1 (2 CPUs) shared by the whole session."""
    from common.ray_bootstrap import ray_session

    with ray_session(num_cpus=2) as handle:
        yield handle
