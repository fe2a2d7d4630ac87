"""What a tool call costs through MCP, beside the bare SDK doing the least it can.

    python -m bench.mcp_calls [--sizes 2000,20000] [--calls 40] [--clients 32] [--seconds 5]

1. Growth over stdio: ``apex-mcp`` (stdio, the embedded engine) on stores of each size (bulk
   loaded through the store's schema, one user), all up at once and asked in turn, p50 and
   p99 of ``list_chats`` (a page of 20), ``get_chat`` and ``search_chats`` for a rare word.
   Each size's p50 is reported as a ratio to the smallest size's. Budget: at most 1.5x from
   2k to 20k chats.
2. Warm ``list_chats`` and ``get_chat`` on a small store (20 chats) against a bare
   ``MCPServer`` echo tool, all over stdio, one call of each in turn (same run, same machine).
   Budget: ``list_chats`` p50 at most 2x the echo's.
3. Streamable HTTP at ``--clients`` concurrent clients: calls per second, p50 and p99 of
   ``list_chats`` (a page of 20) on a small store against the bare SDK server answering the
   same page read by plain sqlite3 ("bare page"), and of ``list_chats`` with a page of one
   chat against the bare server's echo tool (answers about as small), rounds alternating.
   Budget: at least 0.8x the bare server's calls per second in both; the page of 20 against
   the echo is printed for scale. On Linux each
   round also gives the CPU time per call of the server process and of the clients (this
   process): on a machine shared with other work, calls per second follow the neighbours'
   load, CPU time per call much less; the ratio of the (server + clients) CPU per call is the
   throughput ratio of a saturated machine, the server's alone that of one whose clients run
   elsewhere. The clients here (the Python SDK's, 32 in this one process) spend more CPU per
   call than the server, most of it reading and checking the answer against its schema.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from bench.store_search import fill

BARE_STDIO = """
from mcp.server import MCPServer
mcp = MCPServer("bare", log_level="WARNING")
@mcp.tool()
def echo(text: str) -> str:
    return text
mcp.run()
"""

BARE_HTTP = """
import sys
from mcp.server import MCPServer
mcp = MCPServer("bare", log_level="WARNING")
@mcp.tool()
def echo(text: str) -> str:
    return text
mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
"""

# The floor of a list_chats call: the bare SDK server answering the same page of the same
# store, read by plain sqlite3, with the same structured output (the SDK adds its JSON text).
BARE_HTTP_PAGE = """
import sqlite3, sys
from datetime import datetime
from pydantic import BaseModel
from mcp.server import MCPServer

class Chat(BaseModel):
    id: str
    title: str
    chat_type: str
    created_at: datetime | None = None
    updated_at: datetime | None = None

class ChatList(BaseModel):
    chats: list[Chat]
    next_cursor: str | None = None

db = sqlite3.connect(sys.argv[2], check_same_thread=False)
mcp = MCPServer("bare", log_level="WARNING")

@mcp.tool()
def list_chats(limit: int = 20) -> ChatList:
    rows = db.execute(
        "SELECT id, title, chat_type, created_at, updated_at FROM chats WHERE user_id = ?"
        " ORDER BY created_at DESC, seq DESC LIMIT ?", ("local", limit)
    ).fetchall()
    return ChatList(chats=[Chat(id=r[0], title=r[1], chat_type=r[2], created_at=r[3],
                                updated_at=r[4]) for r in rows])

mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
"""

RARE = "chat{n}"  # every chat's prompt holds its own number: a word in one chat only


def base_env(db: Path) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("HOME", "PATH") if k in os.environ}
    return {
        **keep,
        "APEX_DB": str(db),
        "APEX_BACKEND": "local",
        "APEX_MINERS": '[{"name": "none", "base_url": "http://127.0.0.1:9/v1"}]',
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_LOG_LEVEL": "WARNING",
    }


def stdio(args: list[str], env: dict[str, str]) -> Any:
    from mcp import StdioServerParameters

    return StdioServerParameters(command=sys.executable, args=args, env=env)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(client: Any, tool: str, args: dict[str, Any]) -> float:
    started = time.perf_counter()
    result = await client.call_tool(tool, args)
    elapsed = time.perf_counter() - started
    if getattr(result, "is_error", False):
        raise SystemExit(f"a call failed: {result.content}")
    return elapsed


async def make_store(path: Path, chats: int) -> None:
    """A store of ``chats`` chats of the stdio user, migrated by the store itself."""
    from apex_mcp.engine.store import open_store

    store = await open_store(path)
    await store.close()
    fill(path, chats, users=1)
    import sqlite3

    with sqlite3.connect(path) as conn:  # the stdio server's one user
        conn.execute("UPDATE chats SET user_id = 'local'")
        conn.execute("UPDATE completions SET user_id = 'local'")


async def growth(sizes: list[int], calls: int, tmp: Path) -> dict[int, dict[str, list[float]]]:
    """Laps of each call on a server per store size, all servers up at once and asked in
    turn (a busy moment of the machine falls on every size alike)."""
    from mcp import Client

    seen: dict[int, dict[str, list[float]]] = {}
    async with AsyncExitStack() as stack:
        clients, chat_ids = {}, {}
        for size in sizes:
            db = tmp / f"growth-{size}.db"
            await make_store(db, size)
            client = Client(stdio(["-m", "apex_mcp"], base_env(db)), mode="legacy")
            clients[size] = await stack.enter_async_context(client)
            page = await clients[size].call_tool("list_chats", {"limit": 20})
            chat_ids[size] = [c["id"] for c in (page.structured_content or {})["chats"]]
            seen[size] = {"list page": [], "get": [], "rare search": []}
        for n in range(calls + 3):  # the first 3 warm caches
            for size, client in clients.items():
                chat_id = chat_ids[size][n % len(chat_ids[size])]
                word = RARE.format(n=(n * 7919) % size)
                laps = {
                    "list page": await timed(client, "list_chats", {"limit": 20}),
                    "get": await timed(client, "get_chat", {"chat_id": chat_id}),
                    "rare search": await timed(client, "search_chats", {"search_term": word}),
                }
                if n >= 3:
                    for what, lap in laps.items():
                        seen[size][what].append(lap)
    return seen


async def warm_against_echo(calls: int, tmp: Path) -> dict[str, list[float]]:
    """Laps of the bare echo, ``list_chats`` and ``get_chat``, one of each in turn."""
    from mcp import Client

    db = tmp / "small.db"
    await make_store(db, 20)
    laps: dict[str, list[float]] = {"bare echo": [], "list_chats": [], "get_chat": []}
    env = base_env(db)
    async with (
        Client(stdio(["-m", "apex_mcp"], env), mode="legacy") as apex,
        Client(stdio(["-c", BARE_STDIO], env), mode="legacy") as echo,
    ):
        page = await apex.call_tool("list_chats", {"limit": 20})
        chat_id = (page.structured_content or {})["chats"][0]["id"]
        for n in range(calls + 5):
            lap = {
                "bare echo": await timed(echo, "echo", {"text": "hello"}),
                "list_chats": await timed(apex, "list_chats", {"limit": 20}),
                "get_chat": await timed(apex, "get_chat", {"chat_id": chat_id}),
            }
            if n >= 5:
                for what, took in lap.items():
                    laps[what].append(took)
    return laps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user and system) a process has used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Round:
    calls_per_second: float
    server_cpu: float | None  # seconds per call
    client_cpu: float
    latencies: list[float]  # seconds, of every call in the round


@contextmanager
def http_server(command: list[str], env: dict[str, str], port: int) -> Iterator[tuple[str, int]]:
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@asynccontextmanager
async def http_client(url: str) -> AsyncIterator[Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,  # type: ignore[arg-type]
    ):
        yield client


async def calls_per_second(
    server: tuple[str, int], tool: str, args: dict[str, Any], clients: int, seconds: float
) -> Round:
    url, pid = server
    latencies: list[float] = []

    async def one_client() -> None:
        async with http_client(url) as client:
            await client.call_tool(tool, args)  # connected and warm before the clock
            await ready.wait()
            while (started := time.perf_counter()) < stop:
                await client.call_tool(tool, args)
                latencies.append(time.perf_counter() - started)

    ready = anyio.Event()
    stop = float("inf")
    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(one_client)
        await anyio.sleep(2 + clients * 0.05)  # let every client connect
        server_before, client_before = process_cpu(pid), own_cpu()
        started = time.perf_counter()
        stop = started + seconds
        ready.set()
    elapsed = time.perf_counter() - started
    server_after, client_after = process_cpu(pid), own_cpu()
    done = len(latencies)
    calls = max(done, 1)  # a round starved by the machine's other work may finish none
    server_cpu = None
    if server_before is not None and server_after is not None:
        server_cpu = (server_after - server_before) / calls
    return Round(done / elapsed, server_cpu, (client_after - client_before) / calls, latencies)


async def http_against_bare(
    clients: int, seconds: float, rounds: int, tmp: Path
) -> list[dict[str, Round]]:
    """Per round, calls per second of: ours (list_chats, a page of 20 and of 1), the bare SDK
    server's echo tool, and the bare SDK server's list_chats (20) on plain sqlite3; the order
    turns each round."""
    db = tmp / "http.db"
    await make_store(db, 20)
    env = base_env(db)
    ports = {"ours": free_port(), "bare echo": free_port(), "bare page": free_port()}
    commands = {
        "ours": [sys.executable, "-m", "apex_mcp", "serve", "--http", "--port", str(ports["ours"])],
        "bare echo": [sys.executable, "-c", BARE_HTTP, str(ports["bare echo"])],
        "bare page": [sys.executable, "-c", BARE_HTTP_PAGE, str(ports["bare page"]), str(db)],
    }
    # What is measured: on which server, which call.
    calls = {
        "ours": ("ours", "list_chats", {"limit": 20}),
        "ours, 1 chat": ("ours", "list_chats", {"limit": 1}),
        "bare echo": ("bare echo", "echo", {"text": "hello"}),
        "bare page": ("bare page", "list_chats", {"limit": 20}),
    }
    seen = []
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(http_server(command, env, ports[name]))
            for name, command in commands.items()
        }
        names = list(calls)
        for n in range(rounds):
            order = names[n % len(names) :] + names[: n % len(names)]
            rates = {}
            for name in order:
                server, tool, args = calls[name]
                rates[name] = await calls_per_second(servers[server], tool, args, clients, seconds)
            seen.append(rates)
    return seen


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def cpu_per_call(measured: Round) -> float:
    return (measured.server_cpu or 0.0) + measured.client_cpu


def described(measured: Round) -> str:
    cpu = f"clients {ms(measured.client_cpu)}"
    if measured.server_cpu is not None:
        cpu = f"server {ms(measured.server_cpu)}, " + cpu
    laps = measured.latencies or [0.0]
    return (
        f"{measured.calls_per_second:.0f} calls/s, p50 {ms(statistics.median(laps))},"
        f" p99 {ms(percentile(laps, 0.99))} (CPU per call: {cpu})"
    )


def spread(ratios: list[float]) -> str:
    return f"median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: growth,warm,http"
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# bench.mcp_calls on {platform.python_version()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "growth" not in skip:
            seen = anyio.run(growth, sizes, args.calls, tmp)
            first = sizes[0]
            print(f"\n## Over stdio, by store size (p50 / p99; x the {first:,}-chat p50)\n")
            print("| call | " + " | ".join(f"{s:,} chats" for s in sizes) + " |")
            print("|---" * (len(sizes) + 1) + "|")
            for what in seen[first]:
                base = statistics.median(seen[first][what])
                cells = []
                for size in sizes:
                    laps = seen[size][what]
                    p50 = statistics.median(laps)
                    cells.append(f"{ms(p50)} / {ms(percentile(laps, 0.99))} ({p50 / base:.2f}x)")
                print(f"| {what} | " + " | ".join(cells) + " |")
        if "warm" not in skip:
            warm = anyio.run(warm_against_echo, args.calls * 5, tmp)
            echo = statistics.median(warm["bare echo"])
            print("\n## Warm calls (20 chats) against a bare MCPServer echo tool, stdio\n")
            for what, taken in warm.items():
                p50 = statistics.median(taken)
                print(
                    f"{what:10} p50 {ms(p50)}, p99 {ms(percentile(taken, 0.99))}"
                    f" ({p50 / echo:.2f}x the echo)"
                )
            print("budget: list_chats at most 2x the echo")
        if "http" not in skip:
            rounds = anyio.run(http_against_bare, args.clients, args.seconds, args.rounds, tmp)
            print(f"\n## Streamable HTTP, {args.clients} clients, {args.rounds} rounds\n")
            for n, rates in enumerate(rounds, 1):
                print(f"round {n}: " + "; ".join(f"{k} {described(v)}" for k, v in rates.items()))
            # The budget's comparators: the bare server answering the same page ("bare
            # page"), and its echo against a page of one chat (an answer as small). A page of
            # 20 against the echo is for scale: the difference is mostly the clients reading
            # 20 chats.
            for ours, floor, budget in (
                ("ours", "bare page", "budget: at least 0.8x"),
                ("ours, 1 chat", "bare echo", "budget: at least 0.8x"),
                ("ours", "bare echo", "(for scale)"),
            ):
                pairs = [(r[ours], r[floor]) for r in rounds]
                rate = [a.calls_per_second / b.calls_per_second for a, b in pairs]
                print(f"\n{ours} over {floor}: calls/s {spread(rate)}; {budget}")
                p99 = [
                    percentile(a.latencies, 0.99) / percentile(b.latencies, 0.99)
                    for a, b in pairs
                    if a.latencies and b.latencies
                ]
                if p99:
                    print(f"  p99 latency, {ours} over {floor}: {spread(p99)}")
                if all(a.server_cpu and b.server_cpu for a, b in pairs):
                    server = [(b.server_cpu or 0) / (a.server_cpu or 1) for a, b in pairs]
                    both = [cpu_per_call(b) / cpu_per_call(a) for a, b in pairs]
                    print(f"  server CPU per call, {floor} over {ours}: {spread(server)}")
                    print(f"  (server + clients) CPU, {floor} over {ours}: {spread(both)}")


if __name__ == "__main__":
    main()
