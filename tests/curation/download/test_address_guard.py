import ipaddress

import pytest

from curation.download.address_guard import ForbiddenAddress, ResolveError, check_host, forbidden_reason
from tests.curation.download.conftest import fake_resolver


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # Python counts 240/4 as private (and reserved)
        ("100.64.0.1", "not_global"),  # carrier-grade NAT
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_forbidden_reason(address: str, reason: str | None) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


def test_allow_loopback_lets_only_loopback_through() -> None:
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert forbidden_reason(ipaddress.ip_address(address), allow_loopback=True) is None
    for address, reason in (("10.0.0.1", "private"), ("169.254.169.254", "metadata"), ("0.0.0.0", "unspecified")):
        assert forbidden_reason(ipaddress.ip_address(address), allow_loopback=True) == reason


def test_ip_literals_are_checked_without_a_lookup() -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError(f"looked up {host}")

    assert check_host("127.0.0.1", 80, allow_loopback=True, resolver=no_dns) == ipaddress.ip_address("127.0.0.1")
    assert check_host("[::1]", 80, allow_loopback=True, resolver=no_dns) == ipaddress.ip_address("::1")
    with pytest.raises(ForbiddenAddress, match=r"loopback.*allow_loopback"):
        check_host("127.0.0.1", 80, resolver=no_dns)


def test_names_are_checked_after_resolution() -> None:
    resolver = fake_resolver(
        {
            "public.test": ["93.184.216.34"],
            "metadata.test": ["169.254.169.254"],
            "mixed.test": ["93.184.216.34", "10.1.2.3"],  # one bad address refuses the name
        }
    )
    assert check_host("public.test", 443, resolver=resolver) == ipaddress.ip_address("93.184.216.34")
    with pytest.raises(ForbiddenAddress, match="metadata"):
        check_host("metadata.test", 80, resolver=resolver)
    with pytest.raises(ForbiddenAddress, match=r"10\.1\.2\.3 is a private"):
        check_host("mixed.test", 80, resolver=resolver)
    with pytest.raises(ResolveError):
        check_host("nowhere.test", 80, resolver=resolver)


def teredo(server: str, client: str, port: int = 40000) -> str:
    """A Teredo address (RFC 4380): prefix, server IPv4, flags, then port and client IPv4 each inverted."""
    value = (0x2001_0000 << 96) | (int(ipaddress.IPv4Address(server)) << 64)
    value |= (port ^ 0xFFFF) << 32 | (int(ipaddress.IPv4Address(client)) ^ 0xFFFF_FFFF)
    return str(ipaddress.IPv6Address(value))


def v4_hex(v4: str) -> str:  # 169.254.169.254 -> a9fe:a9fe
    packed = ipaddress.IPv4Address(v4).packed
    return f"{packed[0]:02x}{packed[1]:02x}:{packed[2]:02x}{packed[3]:02x}"


PUBLIC_V4 = "8.8.8.8"
# form -> (address embedding v4, the reason when the embedded v4 is public: None where the form itself is public)
FORMS = {
    "ipv4_mapped": (lambda v4: f"::ffff:{v4}", None),
    "ipv4_translated": (lambda v4: f"::ffff:0:{v4}", "ipv4_translated"),
    "ipv4_compatible": (lambda v4: f"::{v4}", "ipv4_compatible"),
    "6to4": (lambda v4: f"2002:{v4_hex(v4)}::1", None),
    "teredo_server": (lambda v4: teredo(v4, PUBLIC_V4), "teredo"),
    "teredo_client": (lambda v4: teredo("65.54.227.120", v4), "teredo"),
    "nat64": (lambda v4: f"64:ff9b::{v4}", None),
}
EMBEDDED = {"169.254.169.254": "metadata", "10.0.0.1": "private", "127.0.0.1": "loopback", PUBLIC_V4: None}


@pytest.mark.parametrize("v4", list(EMBEDDED))
@pytest.mark.parametrize("form", list(FORMS))
def test_ipv6_forms_are_judged_by_the_ipv4_they_embed(form: str, v4: str) -> None:
    make, public_reason = FORMS[form]
    address = ipaddress.ip_address(make(v4))
    expected = EMBEDDED[v4] if EMBEDDED[v4] is not None else public_reason
    assert forbidden_reason(address) == expected


@pytest.mark.parametrize("v4", list(EMBEDDED))
def test_local_use_nat64_is_refused_whatever_it_embeds(v4: str) -> None:
    # RFC 8215 64:ff9b:1::/48: the site picks the prefix length, so the IPv4's position is unknown
    assert forbidden_reason(ipaddress.ip_address(f"64:ff9b:1::{v4}")) == "nat64_local_use"
    assert forbidden_reason(ipaddress.ip_address(f"64:ff9b:1:abcd::{v4}")) == "nat64_local_use"


def test_the_issue_6to4_address_is_refused_as_metadata() -> None:
    assert forbidden_reason(ipaddress.ip_address("2002:a9fe:a9fe::")) == "metadata"
    with pytest.raises(ForbiddenAddress) as refused:
        check_host("2002:a9fe:a9fe::", 80, resolver=fake_resolver({}))
    assert str(refused.value) == (
        "2002:a9fe:a9fe:: -> 2002:a9fe:a9fe:: is a metadata address (6to4 form carrying 169.254.169.254)"
    )


def test_embedded_ipv4_is_checked_for_names_too() -> None:
    resolver = fake_resolver({"nat64.test": ["64:ff9b::a9fe:a9fe"], "public64.test": ["64:ff9b::808:808"]})
    with pytest.raises(ForbiddenAddress, match=r"metadata address \(nat64 form carrying 169\.254\.169\.254\)"):
        check_host("nat64.test", 80, resolver=resolver)
    assert check_host("public64.test", 80, resolver=resolver) == ipaddress.ip_address("64:ff9b::808:808")


def test_allow_loopback_covers_only_the_mapped_form() -> None:
    # a 6to4, NAT64 or compatible address never reaches this machine's test server; ::ffff:127.0.0.1 does
    assert forbidden_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allow_loopback=True) is None
    for address in ("2002:7f00:1::1", "64:ff9b::7f00:1", "::127.0.0.1", teredo("127.0.0.1", PUBLIC_V4)):
        assert forbidden_reason(ipaddress.ip_address(address), allow_loopback=True) == "loopback"


def test_teredo_client_is_deobfuscated() -> None:
    # the client 10.0.0.1 is stored inverted as f5ff:fffe: the raw bits alone look public
    address = ipaddress.IPv6Address(teredo(PUBLIC_V4, "10.0.0.1"))
    assert str(address).endswith(":f5ff:fffe")
    assert forbidden_reason(address) == "private"
