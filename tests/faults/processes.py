"""The servers the fault suite runs as real processes, and the fakes they talk to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.servers import free_port, wait_listening

# Secrets the server holds; none may show in anything it answers or logs.
HTTP_TOKEN = "tok-FAULTS-SECRET-7f3a"
MINER_KEY = "sk-FAULTS-SECRET-91c2"
SECRETS = (HTTP_TOKEN, MINER_KEY)


@dataclass
class World:
    """Everything a fault-suite server talks to, on 127.0.0.1, and the environment naming it."""

    env: dict[str, str]
    miner: FakeOpenAI
    web: FakeWeb


@contextmanager
def fake_world(db: Path) -> Iterator[World]:
    """A fake miner that wants a key, a SearXNG whose hits are fake article pages, and the
    environment of an embedded-engine server using them (research kept small)."""
    miner, web = FakeOpenAI(models=["m1", "m2"], api_key=MINER_KEY), FakeWeb()
    with ExitStack() as stack:
        miner_url = stack.enter_context(serve_openai(miner))
        base = stack.enter_context(serve_web(web))
        searxng = FakeSearxng(hits=[hit(base, "/bees"), hit(base, "/tides")])
        searxng_url = stack.enter_context(serve_searxng(searxng))
        miners = [{"name": "fake", "base_url": miner_url, "api_key": MINER_KEY, "timeout": 10}]
        env = {
            "APEX_DB": str(db),
            "APEX_BACKEND": "local",
            "APEX_MINERS": json.dumps(miners),
            "APEX_DISCOVER_LOCAL_MINERS": "false",
            "APEX_SEARCH_PROVIDER": "searxng",
            "APEX_SEARXNG_URL": searxng_url,
            "APEX_ALLOW_PRIVATE_ADDRESSES": "true",  # the fake pages are on 127.0.0.1
            "APEX_RESEARCH_MAX_SOURCES": "2",
            "APEX_HTTP_TOKEN": HTTP_TOKEN,
        }
        yield World(env, miner, web)


@contextmanager
def mcp_http_process(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """``apex-mcp serve --http`` as a real process on a free port of 127.0.0.1, its stderr in
    ``log`` (a file: a pipe nobody reads would stall a server that logs a lot). Yields the
    ``/mcp`` URL and the process id; the process is killed at the end."""
    port = free_port()
    command = [sys.executable, "-m", "apex_mcp", "serve", "--http", "--port", str(port)]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            wait_listening(port, process)
            yield f"http://127.0.0.1:{port}/mcp", process.pid
            if process.poll() is not None:
                raise AssertionError(
                    f"the server died (exit {process.returncode}): {log.read_text()[-3000:]}"
                )
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


def rss_kib(pid: int) -> int:
    """The resident set size of a process, in KiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no VmRSS line")


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used (user and system), from /proc/<pid>/stat: unlike wall
    time, it does not depend on what else the machine is running."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tracebacks(log: Path) -> list[str]:
    """The tracebacks a server printed to its log: each one an unhandled failure."""
    text = log.read_text(errors="replace")
    return [part.split("\n\n")[0][-1500:] for part in text.split("Traceback (most")[1:]]


@asynccontextmanager
async def mcp_client(url: str, timeout: float = 60) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, with the server's token."""
    headers = {"authorization": f"Bearer {HTTP_TOKEN}"}
    async with (
        httpx2.AsyncClient(timeout=timeout, headers=headers) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        yield client


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
