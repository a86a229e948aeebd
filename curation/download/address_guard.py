"""Which addresses a download may connect to: public unicast only, checked after DNS resolution.

DNS rebinding: a name is resolved once, every address it gives is checked, and the connection then goes to that
checked IP literal (fetch.py opens the socket to the IP and sends the name only in the Host header and as the
TLS server name). No second lookup happens between check and connect, so a name that answers "public" to the
check and "169.254.169.254" a moment later cannot steer the connection. Redirects are followed by fetch.py
itself, so every hop goes through the same check. Residual risk: none from DNS; HTTP proxies are not used
(urllib3 ignores *_proxy variables), so a proxy cannot re-resolve the name either.
"""

import ipaddress
import socket
from collections.abc import Callable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> IP literals. Injectable so tests resolve names without touching real DNS.
Resolver = Callable[[str, int], Sequence[str]]

# Cloud instance-metadata endpoints (AWS, GCP, Azure, OpenStack; AWS IPv6; ECS task metadata; Alibaba).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)


class ForbiddenAddress(Exception):
    """The URL's host is, or resolves to, an address downloads must not reach."""


class ResolveError(Exception):
    """The host name does not resolve."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ResolveError(f"cannot resolve {host!r}: {e}") from e
    return [str(info[4][0]) for info in infos]


def forbidden_reason(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why `ip` is refused, or None when it is a public unicast address (or allowed loopback)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    for reason in ("unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{reason}"):
            return reason
    if not ip.is_global:  # shared address space (100.64/10), 6to4/Teredo relays and the like
        return "not_global"
    return None


def check_host(
    host: str, port: int, *, allow_loopback: bool = False, resolver: Resolver = system_resolver
) -> IPAddress:
    """The address to connect to for `host`: every address it resolves to must pass, and the first is returned.

    Refusing the whole name when any of its addresses is forbidden avoids a later fallback onto the bad one.
    """
    try:
        addresses = [ipaddress.ip_address(host.strip("[]").split("%")[0])]  # an IP literal: no lookup
    except ValueError:
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolver(host, port)]
    if not addresses:
        raise ResolveError(f"{host!r} resolves to no address")
    for ip in addresses:
        reason = forbidden_reason(ip, allow_loopback=allow_loopback)
        if reason is not None:
            hint = " (set allow_loopback=true for a test server on this machine)" if reason == "loopback" else ""
            raise ForbiddenAddress(f"{host} -> {ip} is a {reason} address{hint}")
    return addresses[0]
