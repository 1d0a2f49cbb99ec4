"""The SSRF guard: decisions on resolved addresses (resolver injected, nothing is connected to),
and pinning, shown against a loopback receiver with the destination allow-listed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from receivers import webhook_receiver

from engine.channels.base import DeliveryError
from engine.channels.guard import Resolver, connection, decide, pin, system_resolver


def resolving(*addresses: str) -> Resolver:
    """A resolver that answers ``addresses`` for any name."""

    def resolve(host: str, port: int) -> Sequence[str]:
        return addresses

    return resolve


def never(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"the guard resolved {host} when it had no need to")


def refuse(host: str, port: int) -> Sequence[str]:
    raise OSError("Name or service not known")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.10", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.7", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.8", "IPv4-mapped private"),
        ("::ffff:100.64.1.1", "IPv4-mapped carrier-grade NAT"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
        ("64:ff9b::a9fe:a9fe", "NAT64 link-local"),
        ("2002:a00:1::", "6to4 private"),
    ],
)
def test_internal_addresses_are_refused(address: str, reason: str) -> None:
    decision = decide("hooks.example.com", 443, allow_private=False, resolver=resolving(address))
    assert not decision.allowed
    assert decision.address is None
    assert decision.reason.endswith(f"resolves to {address}: {reason}")


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed_and_pinned(address: str) -> None:
    decision = decide("hooks.example.com", 443, allow_private=False, resolver=resolving(address))
    assert (decision.allowed, decision.address, decision.reason) == (True, address, "public")


def test_one_internal_address_among_public_ones_refuses_the_host() -> None:
    resolver = resolving("93.184.215.14", "10.0.0.1")
    decision = decide("hooks.example.com", 443, allow_private=False, resolver=resolver)
    assert not decision.allowed
    assert decision.addresses == ("93.184.215.14", "10.0.0.1")
    assert "10.0.0.1: private" in decision.reason


def test_an_allow_listed_destination_may_use_private_addresses() -> None:
    resolver = resolving("10.0.0.1")
    decision = decide("crm.internal", 8080, allow_private=True, resolver=resolver)
    assert (decision.allowed, decision.address, decision.reason) == (
        True,
        "10.0.0.1",
        "allow-listed",
    )


def test_ip_literals_are_judged_without_resolving() -> None:
    assert decide("169.254.169.254", 80, allow_private=False, resolver=never).reason.endswith(
        "link-local"
    )
    assert decide("::ffff:7f00:1", 80, allow_private=False, resolver=never).reason.endswith(
        "IPv4-mapped loopback"
    )
    assert decide("93.184.215.14", 80, allow_private=False, resolver=never).allowed


def test_localhost_through_the_system_resolver_is_refused() -> None:
    decision = decide("localhost", 80, allow_private=False, resolver=system_resolver)
    assert not decision.allowed and "loopback" in decision.reason


def test_pin_raises_non_retryable_on_refusal_and_retryable_when_unresolved() -> None:
    with pytest.raises(DeliveryError, match="private") as refused:
        pin("hooks.example.com", 443, allow_private=False, resolver=resolving("192.168.1.1"))
    assert refused.value.retryable is False
    with pytest.raises(DeliveryError, match="cannot resolve") as unresolved:
        pin("hooks.example.com", 443, allow_private=False, resolver=refuse)
    assert unresolved.value.retryable is True
    with pytest.raises(DeliveryError, match="no address"):
        pin("hooks.example.com", 443, allow_private=False, resolver=resolving())


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host() -> None:
    """DNS rebinding: the second answer (127.0.0.2, where nobody listens) is never used."""
    answers = iter(["127.0.0.1", "127.0.0.2"])

    def rebinding(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return [next(answers)]

    asked: list[str] = []
    with webhook_receiver() as receiver:
        address = pin("hooks.example.test", receiver.port, allow_private=True, resolver=rebinding)
        conn = connection("http", "hooks.example.test", receiver.port, address, timeout=5)
        try:
            conn.request("POST", "/pinned", body=b"{}")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
    assert asked == ["hooks.example.test"]
    [request] = receiver.requests
    assert request.path == "/pinned"
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
