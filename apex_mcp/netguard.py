"""Whether an address is on the public internet, and HTTP connections that reach nothing else.
What the server fetches for someone else (a web page; a hosted session's miner or Apex server)
must not be its own loopback, LAN or cloud metadata address.

The check is made where the connection is made: ``PublicOnly`` resolves a name once, checks
every address it resolved to, and connects to one of those checked addresses (TLS still names
the host, and so does the Host header). A name that answers a public address to one lookup
and a private one to the next (DNS rebinding) gains nothing: there is no second lookup.
``check_public_url`` says early, with a clear message, that a URL is refused; it is not what
keeps the connection out.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore2
import httpx2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses to connect to (tests give one that changes its answers)
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

REFUSED = "refused: "  # how a refused connection's error begins
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried (RFC 8305)

# IPv6 forms that carry an IPv4 address in their last 32 bits and lead to it: IPv4-mapped,
# IPv4-compatible (deprecated), IPv4-translated (SIIT), NAT64 (well-known and local-use).
_EMBEDDING_IPV4 = tuple(
    ipaddress.IPv6Network(n)
    for n in ("::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48")
)


class NotPublic(ValueError):
    """The URL is not http(s), cannot be resolved, or resolves to a non-public address."""


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` leads to the public internet, and so does every IPv4 address an
    IPv6 form of it carries (mapped, NAT64, 6to4, Teredo...)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = list(_embedded_ipv4(address))
        if any(not is_public(inner) for inner in embedded):
            return False
        if embedded and address in _EMBEDDING_IPV4[0]:
            return True  # ::ffff:8.8.8.8 is 8.8.8.8
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: ipaddress.IPv6Address) -> Iterable[ipaddress.IPv4Address]:
    if any(address in network for network in _EMBEDDING_IPV4):
        yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:  # 2002:AABB:CCDD::/48 routes to AA.BB.CC.DD
        yield address.sixtofour
    if address.teredo is not None:  # (server, client): both are reached through it
        yield from address.teredo


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to (itself, if it is one), in the resolver's order."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


async def public_addresses(
    host: str, port: int, resolver: Resolver | None = None
) -> list[IPAddress]:
    """The addresses of ``host`` (by ``resolver``, else ``resolve``), all of them public; else
    NotPublic saying why."""
    try:
        addresses = await (resolver or resolve)(host, port)
    except (OSError, UnicodeError, ValueError):  # ValueError: a bad port
        raise NotPublic(f"cannot resolve {host}") from None
    if not addresses:
        raise NotPublic(f"cannot resolve {host}")
    for address in addresses:
        if not is_public(address):
            raise NotPublic(f"{host} is a private address ({address})")
    return addresses


async def check_public_url(url: str, resolver: Resolver | None = None) -> None:
    """Return if every address ``url``'s host resolves to is public; else raise NotPublic."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotPublic("not an http(s) URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise NotPublic(f"cannot resolve {parts.hostname}") from None
    await public_addresses(parts.hostname, port, resolver)


def refusal(error: BaseException) -> str | None:
    """What ``PublicOnly`` refused, if ``error`` (an httpx2.ConnectError) is its refusal."""
    text = str(error)
    return text if text.startswith(REFUSED) else None


def public_transport(
    *,
    resolver: Resolver | None = None,
    network: httpcore2.AsyncNetworkBackend | None = None,
    **options: Any,
) -> httpx2.AsyncHTTPTransport:
    """An httpx2 transport (``options`` as ``AsyncHTTPTransport`` takes them) that connects
    only to public addresses, each checked as it is connected to. A client given it uses no
    proxy from the environment (the address checked must be the one connected to); the
    environment's CA bundle (``SSL_CERT_FILE``) still counts."""
    transport = httpx2.AsyncHTTPTransport(**options)
    pool = transport._pool  # no public way to give httpx2's transport a network backend
    assert isinstance(pool, httpcore2.AsyncConnectionPool)
    pool._network_backend = PublicOnly(resolver, network)
    return transport


class PublicOnly(httpcore2.AsyncNetworkBackend):
    """An httpcore2 network backend: resolve once, check every address, connect to one of
    those checked addresses (several raced as happy eyeballs). A private address is refused
    with ``httpcore2.ConnectError`` whose text begins with ``REFUSED``."""

    def __init__(
        self,
        resolver: Resolver | None = None,
        network: httpcore2.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolver = resolver
        self._network = network if network is not None else httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await public_addresses(host, port, self._resolver)
        except NotPublic as error:
            raise httpcore2.ConnectError(
                f"{REFUSED}{error}; only public addresses are reached"
            ) from None
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host} timed out") from None
        dial = (port, timeout, local_address, socket_options)
        if len(addresses) == 1:
            return await self._dial(addresses[0], *dial)
        return await self._race(addresses, *dial)

    async def _race(self, addresses: list[IPAddress], *dial: Any) -> httpcore2.AsyncNetworkStream:
        """Dial the addresses in order, each when the one before failed or a moment after it
        began (happy eyeballs, as a name's own connection would): the first to connect wins,
        the others are called off. An address that drops its packets costs that moment, not
        a whole connect timeout."""
        won: list[httpcore2.AsyncNetworkStream] = []
        failures: list[Exception] = []

        async def attempt(address: IPAddress, failed: anyio.Event) -> None:
            try:
                stream = await self._dial(address, *dial)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as error:
                failures.append(error)
                failed.set()
                return
            if won:  # another connected first
                await stream.aclose()
                return
            won.append(stream)
            attempts.cancel_scope.cancel()

        async with anyio.create_task_group() as attempts:
            for address in addresses:
                failed = anyio.Event()
                attempts.start_soon(attempt, address, failed)
                with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await failed.wait()
        if won:
            return won[0]
        raise failures[-1]

    async def _dial(
        self,
        address: IPAddress,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore2.AsyncNetworkStream:
        return await self._network.connect_tcp(
            str(address),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError(f"{REFUSED}a unix socket is not a public address")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)
