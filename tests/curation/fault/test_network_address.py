"""A Ray head started by the project listens on 127.0.0.1 only, unless the user passes another host; then it warns
that the dashboard and jobs API have no authentication of their own."""

import ipaddress
import logging

import psutil
import pytest

from common.ray_bootstrap import LOCALHOST, local_head_args

WARNING = "no authentication of their own"


def test_default_host_is_loopback_and_silent(caplog):
    with caplog.at_level(logging.WARNING, logger="common.ray_bootstrap"):
        assert local_head_args() == {"dashboard_host": LOCALHOST, "_node_ip_address": LOCALHOST}
        assert local_head_args("localhost")["dashboard_host"] == "localhost"
    assert caplog.records == []


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "head.example.internal"])
def test_another_host_is_used_and_warned_about(host, caplog):
    with caplog.at_level(logging.WARNING, logger="common.ray_bootstrap"):
        assert local_head_args(host) == {"dashboard_host": host, "_node_ip_address": host}
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and host in record.getMessage()
    assert WARNING in record.getMessage() and "token auth is on" in record.getMessage()


def test_every_listening_socket_of_the_local_head_is_on_loopback(ray_local):
    head = psutil.Process().children(recursive=True)
    listening = [
        (p.name(), c.laddr)
        for p in head
        if p.is_running()
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert len(listening) >= 3  # GCS, raylet, dashboard at least: the check saw the head
    assert [(name, addr) for name, addr in listening if not _is_loopback(addr.ip)] == []


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # gRPC listens on IPv6 sockets as ::ffff:127.0.0.1
    return (mapped or address).is_loopback
