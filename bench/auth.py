"""What a request pays for its token: the HTTP gate with one static token, several, an
OAuth JWT checked against the issuer's keys and an opaque token introspected, beside no gate.

    python -m bench.auth [--requests 2000] [--rounds 7] [--calls 200]

1. The gate alone: ``--requests`` POSTs in-process (httpx2's ASGI transport) to an app that
   answers at once, behind no gate, the ``APEX_HTTP_TOKEN`` gate, the ``APEX_HTTP_TOKENS``
   gate (20 users) and the OAuth gate (RS256 access tokens, the issuer's keys cached after
   the first request: the same token each time, as a client sends it, and a new token each
   time, its signature checked) and the OAuth gate with introspection (asked each time, the
   default, and with ``APEX_OAUTH_INTROSPECTION_CACHE_SECONDS=60``), rounds interleaved: CPU
   and wall-clock microseconds per request, and the gates' cost over no gate. The issuer runs
   in this process: its CPU for an introspection is counted too.
2. A whole MCP call: ``list_chats`` over streamable HTTP (2026-07-28 client) on 127.0.0.1,
   ``--calls`` per round, to a server with ``APEX_HTTP_TOKEN`` and to one with OAuth (each its
   own store, both in this process), rounds alternating: CPU per call (client and server,
   both in this process), the OAuth server's as a ratio of the static token one's, median and
   range over rounds.

The issuer is a local Starlette app serving metadata, JWKS and an introspection endpoint that
says every token is active; tokens are signed here with its key (the resource server's cost is
what is measured, not the issuer's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from apex_mcp.config import Settings
from apex_mcp.server.auth import AuthGate, Protection, tool_permissions
from apex_mcp.server.http import is_open
from tests.servers import free_port, serve_asgi

RESOURCE = "http://127.0.0.1:1/mcp"


@contextmanager
def issuer() -> Iterator[tuple[str, Any]]:
    """A local issuer's URL and its private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "alg": "RS256"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def metadata(request: Any) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": url,
                "jwks_uri": f"{url}/jwks",
                "introspection_endpoint": f"{url}/introspect",
            }
        )

    async def introspect(request: Any) -> JSONResponse:
        await request.form()
        claims = {"active": True, "iss": url, "aud": RESOURCE, "sub": "bench-user"}
        claims.update(scope="apex:read apex:write apex:research", exp=int(time.time()) + 3600)
        return JSONResponse(claims)

    async def jwks(request: Any) -> JSONResponse:
        return JSONResponse({"keys": [jwk]})

    app = Starlette(
        routes=[
            Route("/.well-known/oauth-authorization-server", metadata),
            Route("/jwks", jwks),
            Route("/introspect", introspect, methods=["POST"]),
        ]
    )
    with serve_asgi(app, port=port):
        yield url, key


def token_for(url: str, key: Any, resource: str, sub: str = "bench-user") -> str:
    now = int(time.time())
    claims = {"iss": url, "aud": resource, "sub": sub, "iat": now, "exp": now + 3600}
    claims["scope"] = "apex:read apex:write apex:research"
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


async def answer(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def introspecting(url: str, keep_seconds: float) -> Settings:
    return Settings(
        oauth_issuer=url,
        oauth_token_check="introspection",
        oauth_client_id="bench",
        oauth_client_secret="bench-secret",
        oauth_introspection_cache_seconds=keep_seconds,
    )


def gated(settings: Settings) -> Any:
    protection = Protection.of(settings, RESOURCE)
    assert protection is not None
    return AuthGate(answer, protection, is_open, tool_permissions())


async def per_request(
    app: Any, token: str | list[str] | None, requests: int
) -> tuple[float, float]:
    """CPU microseconds per request through ``app`` (this process's: robust to neighbours),
    and wall-clock ones. A list of tokens: one after the other, each checked for the first
    time."""
    tokens = token if isinstance(token, list) else [token] * requests
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as http:
        if isinstance(token, list):
            app.protection.oauth._verified.clear()  # none checked yet
        else:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            assert (await http.post("/mcp", json=body, headers=headers)).status_code == 200
        start, wall = time.process_time(), time.perf_counter()
        for bearer in tokens[:requests]:
            headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
            await http.post("/mcp", json=body, headers=headers)
        cpu = (time.process_time() - start) / requests * 1e6
        return cpu, (time.perf_counter() - wall) / requests * 1e6


async def gate_alone(url: str, key: Any, requests: int, rounds: int) -> None:
    users = {f"user{n}": f"static-token-{n:04d}-{'x' * 24}" for n in range(20)}
    shared = "one-shared-token-" + "x" * 24
    cases = {
        "no gate": (answer, None),
        "APEX_HTTP_TOKEN": (gated(Settings(http_token=shared)), shared),
        "APEX_HTTP_TOKENS (20)": (gated(Settings(http_tokens=users)), users["user19"]),
        "OAuth JWT (RS256), checked before": (
            gated(Settings(oauth_issuer=url)),
            token_for(url, key, RESOURCE),
        ),
        "OAuth JWT (RS256), a new token each": (
            gated(Settings(oauth_issuer=url)),
            [token_for(url, key, RESOURCE, f"user{n}") for n in range(requests)],
        ),
        "OAuth introspection, asked each time": (gated(introspecting(url, 0)), "opaque-token"),
        "OAuth introspection, kept 60 s": (gated(introspecting(url, 60)), "opaque-token"),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for app, token in cases.values():  # warm-up
        await per_request(app, token, requests)
    for _ in range(rounds):
        for name, (app, token) in cases.items():
            times[name].append(await per_request(app, token, requests))
    bare = statistics.median(cpu for cpu, _ in times["no gate"])
    bare_wall = statistics.median(wall for _, wall in times["no gate"])
    print(f"\n## The gate alone, {requests} requests x {rounds} rounds (in-process)\n")
    print("| gate | CPU µs per request, median (min-max) | over no gate | wall µs, median |")
    print("|---|---|---|---|")
    for name, measured in times.items():
        cpus = [cpu for cpu, _ in measured]
        median, wall = statistics.median(cpus), statistics.median(w for _, w in measured)
        extra = "" if name == "no gate" else f"+{median - bare:.0f} µs"
        spread = f"{median:.0f} ({min(cpus):.0f}-{max(cpus):.0f})"
        print(f"| {name} | {spread} | {extra} | {wall:.0f} (+{wall - bare_wall:.0f}) |")


async def cpu_per_call(url: str, token: str, calls: int) -> float:
    """CPU milliseconds per ``list_chats`` call, the client's and the server's (both run in
    this process: robust to neighbours' load)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        await client.call_tool("list_chats", {})
        start = time.process_time()
        for _ in range(calls):
            result = await client.call_tool("list_chats", {})
            assert not result.is_error
        return (time.process_time() - start) / calls * 1e3


@contextmanager
def mcp_server(env: dict[str, Any], tmp: Path, name: str) -> Iterator[str]:
    from apex_mcp.server.app import build_server
    from apex_mcp.server.http import create_http_app

    port = free_port()
    settings = Settings(db=tmp / f"{name}.db", discover_local_miners=False, **env)
    if settings.oauth_issuer:
        settings = Settings(
            db=tmp / f"{name}.db",
            discover_local_miners=False,
            oauth_resource_url=f"http://127.0.0.1:{port}/mcp",
            **env,
        )
    app = create_http_app(build_server(settings), settings, "127.0.0.1", port)
    with serve_asgi(app, port=port) as url:
        yield url


async def whole_call(url: str, key: Any, calls: int, rounds: int) -> None:
    static = "one-shared-token-" + "x" * 24
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        plain = stack.enter_context(mcp_server({"http_token": static}, Path(tmp), "static"))
        oauth = stack.enter_context(mcp_server({"oauth_issuer": url}, Path(tmp), "oauth"))
        token = token_for(url, key, f"{oauth}/mcp")
        await cpu_per_call(plain, static, calls)  # warm-up: caches, pools, code paths
        await cpu_per_call(oauth, token, calls)
        ratios: list[float] = []
        costs: dict[str, list[float]] = {"static": [], "oauth": []}
        for n in range(rounds):
            order = [("static", plain, static), ("oauth", oauth, token)]
            for name, server, bearer in order if n % 2 else order[::-1]:
                costs[name].append(await cpu_per_call(server, bearer, calls))
            ratios.append(costs["oauth"][-1] / costs["static"][-1])
    print(f"\n## list_chats over streamable HTTP, {calls} calls x {rounds} rounds\n")
    print(f"APEX_HTTP_TOKEN: median {statistics.median(costs['static']):.2f} ms CPU per call")
    print(f"OAuth JWT: median {statistics.median(costs['oauth']):.2f} ms CPU per call")
    print(
        f"OAuth / static token: median {statistics.median(ratios):.2f}x "
        f"(rounds {min(ratios):.2f}-{max(ratios):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    print(f"# bench.auth on {platform.python_version()}, {os.cpu_count()} cores")
    print(
        f"python -m bench.auth --requests {args.requests} --rounds {args.rounds} "
        f"--calls {args.calls}"
    )
    with issuer() as (url, key):
        anyio.run(gate_alone, url, key, args.requests, args.rounds)
        anyio.run(whole_call, url, key, args.calls, args.rounds)


if __name__ == "__main__":
    main()
