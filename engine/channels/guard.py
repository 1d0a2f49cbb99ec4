"""The SSRF guard of outbound webhooks: resolve, refuse internal addresses, pin what was checked.

A destination's host is resolved once; if any address it resolves to is private, loopback,
link-local, carrier-grade NAT (100.64.0.0/10), unspecified, multicast, reserved or otherwise not
globally routable (IPv4-mapped, 6to4 and NAT64 IPv6 forms are judged by the IPv4 address they
carry), the request is refused unless the destination is allow-listed. The connection then goes
to the checked address itself, with the name only in the Host header and TLS SNI, so a second
DNS answer (DNS rebinding) cannot swap it for an internal one.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.channels.base import DeliveryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host, port -> the addresses the name resolves to (strings); raises OSError when it cannot.
Resolver = Callable[[str, int], Sequence[str]]

CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for a TCP connection to ``host:port``, in order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def blocked(address: IPAddress) -> str | None:
    """Why an address must not be reached from a webhook, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        for form, inner in (
            ("IPv4-mapped", address.ipv4_mapped),
            ("6to4", address.sixtofour),
            ("NAT64", _nat64(address)),
        ):
            if inner is not None:
                reason = blocked(inner)
                return f"{form} {reason}" if reason else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("carrier-grade NAT", isinstance(address, ipaddress.IPv4Address) and address in CGNAT),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    return next((reason for reason, hit in checks if hit), None)


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address not in NAT64:
        return None
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class Decision:
    """The guard's verdict on a host: the address to pin to when ``allowed``, else why not."""

    host: str
    allowed: bool
    reason: str
    address: str | None = None
    addresses: tuple[str, ...] = ()


def decide(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = system_resolver
) -> Decision:
    """Resolve ``host`` and judge every address; pin to the first when all may be reached."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        found: tuple[str, ...] = (str(literal),)
    else:
        try:
            found = tuple(resolver(host, port))
        except (OSError, UnicodeError) as error:
            return Decision(host, False, f"cannot resolve {host}: {error}")
    if not found:
        return Decision(host, False, f"{host} resolves to no address")
    try:
        parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    except ValueError as error:
        return Decision(host, False, f"{host}: {error}", None, found)
    if allow_private:
        return Decision(host, True, "allow-listed", found[0], found)
    for text, address in zip(found, parsed, strict=True):
        reason = blocked(address)
        if reason is not None:
            return Decision(host, False, f"{host} resolves to {text}: {reason}", None, found)
    return Decision(host, True, "public", found[0], found)


def pin(host: str, port: int, *, allow_private: bool, resolver: Resolver = system_resolver) -> str:
    """The address to connect to for ``host``; raises a ``DeliveryError`` when refused."""
    decision = decide(host, port, allow_private=allow_private, resolver=resolver)
    if decision.allowed and decision.address is not None:
        return decision.address
    unresolved = not decision.addresses
    raise DeliveryError(f"refused: {decision.reason}", retryable=unresolved)


class PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a pinned address; the Host header still names ``host``."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        """Connect to the pinned address, never to a fresh resolution of the name."""
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a pinned address; SNI and certificate checks use ``host``."""

    def __init__(
        self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address
        self.tls = context

    def connect(self) -> None:
        """Connect to the pinned address, then TLS with the name as SNI and for verification."""
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def connection(
    scheme: str, host: str, port: int, address: str, timeout: float
) -> http.client.HTTPConnection:
    """A connection to ``address`` that speaks to ``host`` over ``scheme`` (http or https)."""
    if scheme == "https":
        context = ssl.create_default_context()
        return PinnedHTTPSConnection(host, port, address, timeout, context)
    return PinnedHTTPConnection(host, port, address, timeout)
