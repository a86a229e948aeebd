"""Which addresses a download may connect to: public unicast only, checked after DNS resolution.

DNS rebinding: a name is resolved once, every address it gives is checked, and the connection then goes to that
checked IP literal (fetch.py opens the socket to the IP and sends the name only in the Host header and as the
TLS server name). No second lookup happens between check and connect, so a name that answers "public" to the
check and "169.254.169.254" a moment later cannot steer the connection. Redirects are followed by fetch.py
itself, so every hop goes through the same check. Residual risk: none from DNS; HTTP proxies are not used
(urllib3 ignores *_proxy variables), so a proxy cannot re-resolve the name either.

IPv6 forms that carry an IPv4 address are judged by that IPv4 as well (see `embedded_ipv4`): 2002:a9fe:a9fe:: is
6to4 for 169.254.169.254, and a relay or translator would take the connection there.
"""

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


# Well-known NAT64 prefix (RFC 6052): the IPv4 address is in the low 32 bits. Globally reachable (IANA registry).
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# Local-use NAT64 prefix (RFC 8215): each site picks a prefix length inside it, so where the IPv4 bits sit is not
# knowable from outside, and it is not globally reachable: refused outright.
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


@dataclass(frozen=True)
class Embedding:
    """An IPv6 form that carries IPv4 addresses."""

    form: str  # ipv4_mapped, ipv4_translated, ipv4_compatible, nat64, nat64_local_use, 6to4, teredo
    ipv4: tuple[ipaddress.IPv4Address, ...]  # empty when the form is refused without decoding
    public: bool  # the form may be connected to when every embedded IPv4 is public


def embedded_ipv4(ip: ipaddress.IPv6Address) -> Embedding | None:
    """The IPv4 addresses `ip` carries, or None when it is a plain IPv6 address."""
    value = int(ip)
    low32 = (ipaddress.IPv4Address(value & 0xFFFFFFFF),)
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d, a dual-stack socket connects to a.b.c.d itself
        return Embedding("ipv4_mapped", (ip.ipv4_mapped,), public=True)
    if value >> 32 == 0xFFFF_0000:  # ::ffff:0:a.b.c.d (SIIT, RFC 2765): translator-internal, never routed
        return Embedding("ipv4_translated", low32, public=False)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d (deprecated by RFC 4291); :: and ::1 have their own rules
        return Embedding("ipv4_compatible", low32, public=False)
    if ip in NAT64_WELL_KNOWN:
        return Embedding("nat64", low32, public=True)
    if ip in NAT64_LOCAL_USE:
        return Embedding("nat64_local_use", (), public=False)
    if ip.sixtofour is not None:  # 2002:AABB:CCDD::/48 for AA.BB.CC.DD
        return Embedding("6to4", (ip.sixtofour,), public=True)
    if ip.teredo is not None:  # the Teredo server and the (de-obfuscated) client both carry an IPv4
        return Embedding("teredo", ip.teredo, public=False)  # Python and IANA do not count 2001::/32 as global
    return None


def forbidden_reason(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why `ip` is refused, or None when it is a public unicast address (or allowed loopback).

    An IPv6 address that embeds IPv4 addresses is refused with the reason of the first refused IPv4, else with the
    name of its form when the form itself is not public. Embedded loopback passes `allow_loopback` only in the
    IPv4-mapped form: in any other form it does not reach this machine's test server.
    """
    if isinstance(ip, ipaddress.IPv6Address) and (embedding := embedded_ipv4(ip)) is not None:
        loopback_ok = allow_loopback and embedding.form == "ipv4_mapped"
        for ipv4 in embedding.ipv4:
            if (reason := _own_reason(ipv4, allow_loopback=loopback_ok)) is not None:
                return reason
        # ipaddress counts the NAT64 and mapped prefixes as reserved (inside ::/8); the IPv4 decides for them
        return None if embedding.public else embedding.form
    return _own_reason(ip, allow_loopback=allow_loopback)


def _own_reason(ip: IPAddress, *, allow_loopback: bool) -> str | None:
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    for reason in ("unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{reason}"):
            return reason
    if not ip.is_global:  # shared address space (100.64/10) and the like
        return "not_global"
    return None


def _embedding_note(ip: IPAddress) -> str:
    embedding = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if embedding is None or embedding.form == "ipv4_mapped":
        return ""
    carried = ", ".join(str(a) for a in embedding.ipv4) or "an IPv4 address at a site-chosen offset"
    return f" ({embedding.form} form carrying {carried})"


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
            note = _embedding_note(ip)
            hint = " (set allow_loopback=true for a test server on this machine)" if reason == "loopback" else ""
            raise ForbiddenAddress(f"{host} -> {ip} is a {reason} address{note or hint}")
    return addresses[0]
