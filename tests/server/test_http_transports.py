"""What HTTP clients other than streamable HTTP ones meet: the 2024-11-05 HTTP+SSE transport
at /sse (the SDK's own SSE client), behind the same token and Host/Origin checks as /mcp, and
a plain 404 where hosts look for OAuth metadata."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from apex_mcp.server.app import build_server
from apex_mcp.server.http import create_http_app
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.server.harness import engine_env, settings_from, text_of
from tests.servers import free_port, serve_asgi

pytestmark = pytest.mark.anyio

TOKEN = "tok-SECRET-123"
AUTH = {"authorization": f"Bearer {TOKEN}"}
DISCOVERY = (
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/mcp",
    "/.well-known/openid-configuration",
)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve_openai(FakeOpenAI(models=["m1"])) as miner_url:
        yield {**engine_env(tmp_path / "apex.db", miner_url), "APEX_HTTP_TOKEN": TOKEN}


@pytest.fixture
def url(env: dict[str, str]) -> Iterator[str]:
    with serving(env) as base:
        yield base


@contextmanager
def serving(env: dict[str, str]) -> Iterator[str]:
    settings = settings_from(env)
    port = free_port()
    with serve_asgi(
        create_http_app(build_server(settings), settings, "127.0.0.1", port), port=port
    ) as base:
        yield base


async def test_an_sse_client_initializes_lists_and_calls_over_sse(url: str) -> None:
    async with Client(sse_client(f"{url}/sse", headers=AUTH), mode="legacy") as client:
        assert client.server_info is not None and client.server_info.name == "apex-mcp"
        tools = (await client.list_tools()).tools
        result = await client.call_tool("chat", {"user_prompt": "over sse", "save": False})
    assert len(tools) == 16
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["answer"] == "echo: over sse"


async def test_sse_needs_the_token(url: str) -> None:
    async with httpx2.AsyncClient(base_url=url) as http:
        stream = await http.get("/sse")
        wrong = await http.get("/sse", headers={"authorization": "Bearer nope"})
        message = await http.post(f"/messages/?session_id={'0' * 32}", json={})
    assert stream.status_code == wrong.status_code == message.status_code == 401
    assert TOKEN not in stream.text + wrong.text + message.text


async def test_sse_refuses_a_foreign_host_or_origin(url: str) -> None:
    async with httpx2.AsyncClient(base_url=url, headers=AUTH) as http:
        rebound = await http.get("/sse", headers={"host": "attacker.example"})
        evil = await http.get("/sse", headers={"origin": "https://evil.example"})
        evil_post = await http.post(
            f"/messages/?session_id={'0' * 32}",
            json={},
            headers={"origin": "https://evil.example"},
        )
    assert rebound.status_code == 421
    assert evil.status_code == evil_post.status_code == 403


async def test_sse_is_refused_with_a_reason_where_sessions_bring_settings(
    env: dict[str, str],
) -> None:
    hosted = {**env, "APEX_HTTP_SESSION_CONFIG": "true", "APEX_ALLOW_PRIVATE_ADDRESSES": "true"}
    with serving(hosted) as base:
        async with httpx2.AsyncClient(base_url=base, headers=AUTH) as http:
            stream = await http.get("/sse", params={"miner": "ollama"})
            message = await http.post(f"/messages/?session_id={'0' * 32}", json={})
    assert stream.status_code == message.status_code == 400
    assert stream.json()["message"].startswith(
        "the HTTP+SSE transport (/sse) is not served with APEX_HTTP_SESSION_CONFIG"
    )
    assert "connect to /mcp" in message.json()["message"]


async def test_oauth_discovery_finds_nothing_rather_than_a_sign_in_error(
    url: str, env: dict[str, str]
) -> None:
    async with httpx2.AsyncClient(base_url=url) as http:
        probes = [await http.get(path) for path in DISCOVERY]
        mcp = await http.get("/mcp")  # the endpoint itself still wants the token
    assert [p.status_code for p in probes] == [404] * len(DISCOVERY)
    assert probes[0].json()["error"] == "not_found"
    assert "does not use OAuth" in probes[0].json()["message"]
    assert mcp.status_code == 401
    # Where sessions bring their settings, the probe carries none and is no bad request.
    with serving({**env, "APEX_HTTP_SESSION_CONFIG": "true"}) as base:
        async with httpx2.AsyncClient(base_url=base) as http:
            hosted = await http.get(DISCOVERY[0])
    assert hosted.status_code == 404
