"""urllib3 connection pools whose responses are read under the fetch's deadline, status line and headers included.

http.client reads the head line by line and the body chunk by chunk, each through many socket reads; the socket
timeout bounds one read, not their sum. The response class here reads through `_BoundedReader`, which before each
read checks the active `Budget` and sets the socket timeout to min(timeout, time left). Connecting, the TLS
handshake and sending the request are single socket calls that CPython bounds as a whole by the socket timeout,
which fetch.py sets to the same min(timeout, time left) for each request.
"""

import http.client
import io
import socket
import ssl
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from curation.download.deadline import Budget, active_budget


class _BoundedReader(io.RawIOBase):
    """A socket's byte stream where no read waits past the budget's deadline."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, budget: Budget) -> None:
        super().__init__()
        self._sock = sock
        # buffering=0 gives the raw SocketIO; it holds a reference that keeps the socket open while it is read
        self._stream = sock.makefile("rb", buffering=0)
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._budget.operation_timeout())  # raises DeadlineExceeded once time is up
        return self._stream.readinto(buffer)

    def fileno(self) -> int:
        return self._stream.fileno()

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


class _BoundedSocketView:
    """All http.client.HTTPResponse asks of its socket is makefile("rb")."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, budget: Budget) -> None:
        self._sock, self._budget = sock, budget

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_BoundedReader(self._sock, self._budget))


class BoundedHTTPResponse(http.client.HTTPResponse):
    """Reads under the budget active when the response is created (none active: plain socket timeouts)."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        budget = active_budget()
        super().__init__(sock if budget is None else _BoundedSocketView(sock, budget), *args, **kwargs)


class BoundedHTTPConnection(HTTPConnection):
    response_class = BoundedHTTPResponse


class BoundedHTTPSConnection(HTTPSConnection):
    response_class = BoundedHTTPResponse


class BoundedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = BoundedHTTPConnection


class BoundedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = BoundedHTTPSConnection
