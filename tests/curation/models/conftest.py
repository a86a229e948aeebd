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
