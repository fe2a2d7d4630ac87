"""Ways to reach the MCP server in tests: the SDK's client over stdio (a real subprocess),
over streamable HTTP on 127.0.0.1, or in-memory; on the embedded engine or through a gateway."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from apex_mcp.config import Settings
from apex_mcp.gateway import create_gateway_app
from apex_mcp.server.app import build_server
from apex_mcp.server.http import create_http_app
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.servers import free_port, serve_asgi

# The tools that change nothing: what --read-only, or a token with the read scope only, shows.
READ_TOOLS = {
    "web_search",
    "deep_research_status",
    "list_research",
    "list_chats",
    "get_chat",
    "search_chats",
    "get_completion",
}


@dataclass
class Backend:
    """Where the MCP server's ApexClient points, as settings and as environment variables."""

    name: str
    env: dict[str, str]
    fake: FakeOpenAI
    extra: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> Settings:
        return settings_from(self.env)


def settings_from(env: dict[str, str]) -> Settings:
    """The settings a server process with this environment would read."""
    with mock.patch.dict(os.environ, env):
        return Settings()


@contextmanager
def user_miner_env(tmp: Path, api_key: str) -> Iterator[dict[str, str]]:
    """What a user sets for one miner, in one line each: a fake OpenAI server's URL, a key
    (that must never show anywhere) and its model."""
    with serve_openai(FakeOpenAI(models=["m1"])) as url:
        yield {
            "APEX_DB": str(tmp / "apex.db"),
            "APEX_MINER": url,
            "APEX_MINER_API_KEY": api_key,
            "APEX_MINER_MODEL": "m1",
            "APEX_DISCOVER_LOCAL_MINERS": "false",
        }


def engine_env(db: Path, miner_url: str) -> dict[str, str]:
    miners = [{"name": "fake", "base_url": miner_url, "models": ["m1"], "timeout": 5}]
    return {
        "APEX_DB": str(db),
        "APEX_MINERS": json.dumps(miners),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_BACKEND": "local",
    }


def research_env(db: Path, miner_url: str, searxng_url: str) -> dict[str, str]:
    """The embedded engine doing deep research on fakes: one miner (30 s: a step may wait on
    an answer a test holds), a SearXNG, pages on 127.0.0.1 allowed, and research followed
    every 0.1 s."""
    return {
        "APEX_DB": str(db),
        "APEX_MINERS": json.dumps([{"name": "fake", "base_url": miner_url, "timeout": 30}]),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_SEARCH_PROVIDER": "searxng",
        "APEX_SEARXNG_URL": searxng_url,
        "APEX_ALLOW_PRIVATE_ADDRESSES": "true",
        "APEX_RESEARCH_POLL_SECONDS": "0.1",
    }


@contextmanager
def backend(kind: str, tmp: Path) -> Iterator[Backend]:
    """``local``: the embedded engine on a SQLite file. ``remote``: RemoteApex through a
    gateway serving the same engine. Either way the fake OpenAI server answers chats."""
    fake = FakeOpenAI(models=["m1"])
    with serve_openai(fake) as miner_url:
        env = engine_env(tmp / "apex.db", miner_url)
        if kind == "local":
            yield Backend("local", env, fake)
            return
        gateway_settings = Settings(
            db=tmp / "gateway.db",
            miners=json.loads(env["APEX_MINERS"]),
            discover_local_miners=False,
        )
        with serve_asgi(create_gateway_app(gateway_settings)) as gateway_url:
            yield Backend("remote", {"APEX_BACKEND": "remote", "APEX_BASE_URL": gateway_url}, fake)


def stdio_params(env: dict[str, str], *args: str) -> StdioServerParameters:
    # The SDK passes only a few variables to the child: give it what it needs.
    keep = {
        k: os.environ[k]
        for k in ("HOME", "PATH", "XDG_CONFIG_HOME", "XDG_DATA_HOME")
        if k in os.environ
    }
    return StdioServerParameters(
        command=sys.executable, args=["-m", "apex_mcp", *args], env={**keep, **env}
    )


@asynccontextmanager
async def connect(
    transport: str, env: dict[str, str], *args: str, mode: str = "legacy", **client: Any
) -> AsyncIterator[Client]:
    """The SDK's client connected over ``stdio`` or ``http`` to a server with this env."""
    if transport == "stdio":
        async with Client(stdio_params(env, *args), mode=mode, **client) as session:  # type: ignore[arg-type]
            yield session
        return
    settings = settings_from(env)
    port = free_port()
    app = create_http_app(build_server(settings), settings, "127.0.0.1", port)
    with serve_asgi(app, port=port) as url:
        async with httpx2.AsyncClient(timeout=30) as http:
            transport_ = streamable_http_client(f"{url}/mcp", http_client=http)
            async with Client(transport_, mode=mode, **client) as session:  # type: ignore[arg-type]
                yield session


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
