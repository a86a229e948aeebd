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
