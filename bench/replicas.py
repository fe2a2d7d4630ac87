"""Calls per second through 1, 2 and 3 HTTP replicas on PostgreSQL, against one on SQLite.

    python -m bench.replicas [--replicas 1,2,3] [--clients 24] [--seconds 5] [--rounds 3]
                             [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Each setup is ``apex-mcp serve --http --stateless`` processes (the embedded engine, one user)
on one database: a SQLite file for the comparator, a PostgreSQL database created here (and
dropped at the end) for the replicas. ``--clients`` 2026-07-28 clients, spread over the
replicas in turn as a balancer without sticky sessions would, each call a user's mix: a write
(``create_chat``) for every three reads (``list_chats``, ``get_chat``, ``search_chats`` for a
word of its own chat). Rounds alternate the setups' order; each round gives every setup's
calls per second and the CPU per call of its servers (all replicas) and of the clients (this
process). Reported: calls per second, median and min-max over the rounds, and as a ratio to
the SQLite server of the same round.

On one machine the replicas share its cores with each other, with PostgreSQL and with the
clients: what more replicas buy here is bounded by the cores; on several machines each brings
its own. CPU per call tells what a replica costs wherever it runs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from bench.mcp_calls import base_env, free_port, http_server, own_cpu, process_cpu

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Round:
    calls_per_second: float
    server_cpu: float  # seconds per call, all replicas together
    client_cpu: float
    failures: list[str]


@contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A new database on ``server`` for the run; dropped at the end."""
    import psycopg

    name = f"apex_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(server)._replace(path="/" + name))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def replicas(db: str, count: int) -> Iterator[list[tuple[str, int]]]:
    env = {**base_env(Path(".")), "APEX_DB": db, "APEX_HTTP_STATELESS": "true"}
    with ExitStack() as stack:
        servers = []
        for _ in range(count):
            port = free_port()
            command = [sys.executable, "-m", "apex_mcp", "serve", "--http", "--port", str(port)]
            servers.append(stack.enter_context(http_server(command, env, port)))
        yield servers


async def user_mix(client: Any, n: int, calls: list[int], failures: list[str]) -> None:
    """One user's calls, a write for every three reads, until cancelled."""
    made = await client.call_tool("create_chat", {"user_prompt": f"client{n} bees"})
    if made.is_error or made.structured_content is None:
        raise SystemExit(f"create_chat failed: {made.content}")
    chat_id = made.structured_content["chat"]["id"]
    for step in itertools.count():
        tool, args = [
            ("create_chat", {"user_prompt": f"client{n} step{step} bees and wasps"}),
            ("list_chats", {"limit": 20}),
            ("get_chat", {"chat_id": chat_id}),
            ("search_chats", {"search_term": f"client{n}"}),
        ][step % 4]
        result = await client.call_tool(tool, args)
        if result.is_error:  # counted and told, not hidden in the rate
            failures.append(f"{tool}: {result.content[0].text[:200]}")
        else:
            calls[0] += 1


async def measure(servers: list[tuple[str, int]], clients: int, seconds: float) -> Round:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    calls, failures = [0], []
    counting = anyio.Event()

    async def one_client(n: int) -> None:
        url = servers[n % len(servers)][0]
        async with (
            httpx2.AsyncClient(timeout=60) as http,
            Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client,  # type: ignore[arg-type]
        ):
            await client.call_tool("list_chats", {"limit": 1})  # connected and warm
            await counting.wait()
            await user_mix(client, n, calls, failures)

    async with anyio.create_task_group() as tg:
        for n in range(clients):
            tg.start_soon(one_client, n)
        await anyio.sleep(2 + clients * 0.05)  # let every client connect
        pids = [pid for _, pid in servers]
        server_before, client_before = [process_cpu(pid) or 0.0 for pid in pids], own_cpu()
        counting.set()
        started = time.perf_counter()
        calls[0] = 0
        await anyio.sleep(seconds)
        done, elapsed = calls[0], time.perf_counter() - started
        server_after, client_after = [process_cpu(pid) or 0.0 for pid in pids], own_cpu()
        tg.cancel_scope.cancel()
    per_call = max(done, 1)
    return Round(
        done / elapsed,
        (sum(server_after) - sum(server_before)) / per_call,
        (client_after - client_before) / per_call,
        failures,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=POSTGRES, help="a server's maintenance database")
    args = parser.parse_args()
    counts = [int(c) for c in args.replicas.split(",")]
    print(f"# bench.replicas on {platform.python_version()}, {os.cpu_count()} cores")
    print(f"# {' '.join(sys.argv)}")
    seen: dict[str, list[Round]] = {}
    with tempfile.TemporaryDirectory() as tmp, postgres_database(args.postgres) as pg:
        setups = {"SQLite x1": (str(Path(tmp) / "apex.db"), 1)}
        setups |= {f"PostgreSQL x{n}": (pg, n) for n in counts}
        for n in range(args.rounds):
            names = list(setups)
            order = names[n % len(names) :] + names[: n % len(names)]
            for name in order:
                db, count = setups[name]
                with replicas(db, count) as servers:
                    measured = anyio.run(measure, servers, args.clients, args.seconds)
                seen.setdefault(name, []).append(measured)
                print(
                    f"round {n + 1} {name}: {measured.calls_per_second:.0f} calls/s, CPU per"
                    f" call: servers {measured.server_cpu * 1000:.2f} ms, clients"
                    f" {measured.client_cpu * 1000:.2f} ms, failed calls"
                    f" {len(measured.failures)}"
                    + (f" (first: {measured.failures[0]})" if measured.failures else ""),
                    flush=True,
                )
    base = seen["SQLite x1"]
    print(f"\n## {args.clients} clients, {args.rounds} rounds of {args.seconds:g} s\n")
    print(
        "| setup | calls/s, median (min-max) | x SQLite x1, median (min-max) |"
        " servers' CPU per call | clients' CPU per call |"
    )
    print("|---|---|---|---|---|")
    for name, rounds in seen.items():
        rates = [r.calls_per_second for r in rounds]
        ratios = [
            r.calls_per_second / b.calls_per_second for r, b in zip(rounds, base, strict=True)
        ]
        server = statistics.median(r.server_cpu for r in rounds) * 1000
        client = statistics.median(r.client_cpu for r in rounds) * 1000
        print(
            f"| {name} | {statistics.median(rates):.0f} ({min(rates):.0f}-{max(rates):.0f}) |"
            f" {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
            f" {server:.2f} ms | {client:.2f} ms |"
        )


if __name__ == "__main__":
    main()
