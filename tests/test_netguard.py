"""The SSRF guard holds against DNS rebinding: what is connected to is what was checked.

A name that answers a public address first and 127.0.0.1 after (the rebinding attack) must
never lead to a loopback server. The "public" address in these tests is routed to a local
server by the test's network, so nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpcore2
import httpx2
import pytest

from apex_mcp.apex.models import WebRetrievalRequest
from apex_mcp.engine.retrieval import WebRetriever
from apex_mcp.engine.search import SearchHit
from apex_mcp.netguard import IPAddress, is_public, public_transport
from tests.fakes.web import FakeSearch, FakeWeb, serve_web
from tests.servers import free_port, serve_asgi, waiting_for

pytestmark = pytest.mark.anyio

PUBLIC = "8.8.8.8"  # routed by ``Network`` to the local "public" web: never dialled

# IPv6 forms that lead to loopback, private or metadata addresses.
PRIVATE_IPV6_FORMS = [
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible
    "::ffff:0:7f00:1",  # IPv4-translated (SIIT)
    "64:ff9b::7f00:1",  # NAT64, well-known prefix: 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
    "64:ff9b::c0a8:101",  # NAT64 of 192.168.1.1
    "64:ff9b:1::a00:1",  # NAT64, local-use prefix: 10.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of the metadata address
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "fd00:ec2::254",  # a cloud's IPv6 metadata (unique local)
    "fe80::1",
    "::1",
]


@pytest.mark.parametrize("address", PRIVATE_IPV6_FORMS)
def test_ipv6_forms_of_private_addresses_are_private(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])
def test_ipv6_forms_of_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


class Network(httpcore2.AsyncNetworkBackend):
    """The network as the tests see it: ``PUBLIC`` is a local server standing for the
    internet; anything else is dialled as asked. Records every address dialled."""

    def __init__(self, public_port: int) -> None:
        self.public_port = public_port
        self.dialled: list[str] = []
        self._real = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        self.dialled.append(host)
        if host == PUBLIC:
            host, port = "127.0.0.1", self.public_port
        return await self._real.connect_tcp(host, port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


class Rebinding:
    """A resolver that answers each name with a public address first, then ``then``."""

    def __init__(self, then: str = "127.0.0.1") -> None:
        self.then = ipaddress.ip_address(then)
        self.asked: Counter[str] = Counter()

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked[host] += 1
        return [ipaddress.ip_address(PUBLIC) if self.asked[host] == 1 else self.then]


@contextmanager
def two_webs() -> Iterator[tuple[FakeWeb, FakeWeb, int]]:
    """The public web, and a loopback server on the port the pages' URLs name."""
    public, loopback = FakeWeb(), FakeWeb()
    port = free_port()
    with serve_web(public), serve_asgi(loopback, port=port):
        yield public, loopback, port


async def test_a_rebinding_name_never_leads_retrieval_to_loopback() -> None:
    with two_webs() as (public, loopback, port):
        network = Network(int(public.base.rsplit(":", 1)[1]))
        resolver = Rebinding()
        pages = ["bees", "tides", "sourdough", "lighthouses", "volcanoes"]
        hits = [SearchHit(url=f"http://site{i}.example:{port}/{p}") for i, p in enumerate(pages)]

        async def read_all() -> list[str]:
            retriever = WebRetriever([FakeSearch(hits=hits)], resolver=resolver, network=network)
            async with retriever:
                request = WebRetrievalRequest(search_query="bees", n_results=len(pages))
                return [r.url for r in (await retriever.retrieve(request)).results]

        first = await read_all()  # each name answers public: read from the public web
        again = await read_all()  # now each answers 127.0.0.1: refused, none read

    assert len(first) == len(pages)
    hosts = {r.headers["host"] for r in public.requests}  # dialled by address, asked by name
    assert hosts == {f"site{i}.example:{port}" for i in range(len(pages))}
    assert again == []
    assert loopback.requests == []  # no loopback content, ever
    assert "127.0.0.1" not in network.dialled
    assert all(resolver.asked[f"site{i}.example"] == 2 for i in range(len(pages)))


@pytest.mark.parametrize("address", PRIVATE_IPV6_FORMS)
async def test_each_private_ipv6_form_is_refused_before_dialling(address: str) -> None:
    with two_webs() as (public, loopback, port):
        network = Network(int(public.base.rsplit(":", 1)[1]))
        resolver = Rebinding(then=address)
        resolver.asked["rebound.example"] = 1  # its public answer went to an earlier lookup
        transport = public_transport(resolver=resolver, network=network)
        async with httpx2.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx2.ConnectError) as refused:
                await http.get(f"http://rebound.example:{port}/bees")
    assert str(refused.value).startswith("refused: rebound.example is a private address")
    assert network.dialled == []
    assert loopback.requests == []


BLACKHOLE = "2001:4860:4860::8888"  # public, and (in ``Blackholing``) drops every packet


class Blackholing(Network):
    """``Network`` where dialling ``BLACKHOLE`` never ends until it is called off."""

    def __init__(self, public_port: int) -> None:
        super().__init__(public_port)
        self.called_off = 0

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        if host != BLACKHOLE:
            return await super().connect_tcp(host, port, timeout, local_address, socket_options)
        self.dialled.append(host)
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.called_off += 1
            raise
        raise AssertionError("unreachable")


async def test_an_address_that_drops_packets_does_not_hold_the_connection() -> None:
    """A name with a dead address first and a live one next connects to the live one (as
    anyio's own dialling of a name would), without waiting out a connect timeout."""
    with two_webs() as (public, _, port):
        network = Blackholing(int(public.base.rsplit(":", 1)[1]))

        async def both(host: str, port: int) -> list[IPAddress]:
            return [ipaddress.ip_address(BLACKHOLE), ipaddress.ip_address(PUBLIC)]

        transport = public_transport(resolver=both, network=network)
        async with httpx2.AsyncClient(transport=transport, timeout=None) as http:
            with waiting_for("the live address to answer (no connect timeout is set)", 30):
                response = await http.get(f"http://dual.example:{port}/bees")
    assert response.status_code == 200
    assert network.dialled == [BLACKHOLE, PUBLIC]
    assert network.called_off == 1  # the dead attempt was called off, not left hanging
