import socket

import pytest


def _refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args}")


@pytest.fixture
def no_network(monkeypatch):
    """Any connection or name lookup fails the test: the code under test must not even try."""
    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)


def genuine_checkpoint(out, model: str = "yolo11n.yaml", task: str = "detect"):
    """A release-format ultralytics checkpoint (trained one epoch offline, stripped by ultralytics itself), written
    by a process of its own: ultralytics' trainer changes process-wide torch settings."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "curation.models.yolo_genuine", "checkpoint", "--model", model, "--task", task]
    subprocess.run([*command, str(out)], check=True, env={**os.environ}, capture_output=True, timeout=600)
    return out


@pytest.fixture(scope="session")
def genuine_detect(tmp_path_factory):
    return genuine_checkpoint(tmp_path_factory.mktemp("genuine") / "yolo11n.pt")


@pytest.fixture(scope="session")
def genuine_pose(tmp_path_factory):
    return genuine_checkpoint(tmp_path_factory.mktemp("genuine") / "yolo11n-pose.pt", "yolo11n-pose.yaml", "pose")
