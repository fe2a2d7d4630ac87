"""Replicas behind a round-robin balancer without sticky sessions: two MCP servers on one
database, and a client whose every HTTP request goes to the other one. 2026-07-28 clients need
no session; handshake-era (2025-11-25) clients need APEX_HTTP_STATELESS, without which the
other replica does not know their session. The gateway keeps nothing between requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import LoggingMessageNotificationParams, ResourceTemplateReference

from apex_mcp.apex import models as m
from apex_mcp.config import Settings
from apex_mcp.gateway import create_gateway_app
from apex_mcp.server.app import build_server
from apex_mcp.server.http import create_http_app
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.server.harness import engine_env, settings_from, text_of
from tests.servers import free_port, run_process, serve_asgi, wait_listening, waiting_for

pytestmark = pytest.mark.anyio

BALANCER = "balancer.test"  # the Host clients reach the replicas by
ENDPOINT = f"http://{BALANCER}/mcp"
STATELESS = {"APEX_HTTP_STATELESS": "true"}

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "older-client", "version": "1"},
    },
}


class RoundRobin(httpx2.AsyncBaseTransport):
    """A balancer without sticky sessions: each request goes to the next replica in turn,
    keeping the Host the client used."""

    def __init__(self, replicas: list[str]) -> None:
        self.replicas = [httpx2.URL(url) for url in replicas]
        self.sent: list[tuple[str, int, int]] = []  # method, replica, status
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        replica = len(self.sent) % len(self.replicas)
        target = self.replicas[replica]
        request.url = request.url.copy_with(host=target.host, port=target.port)
        response = await self._inner.handle_async_request(request)
        self.sent.append((request.method, replica, response.status_code))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve_openai(FakeOpenAI(models=["m1"])) as miner_url:
        yield {
            **engine_env(tmp_path / "apex.db", miner_url),
            "APEX_HTTP_ALLOWED_HOSTS": json.dumps([BALANCER]),
        }


@contextmanager
def replicas(env: dict[str, str], count: int = 2) -> Iterator[RoundRobin]:
    """``count`` MCP servers over HTTP on the same database, behind a round-robin."""
    with ExitStack() as stack:
        urls = []
        for _ in range(count):
            settings = settings_from(env)
            port = free_port()
            app = create_http_app(build_server(settings), settings, "127.0.0.1", port)
            urls.append(stack.enter_context(serve_asgi(app, port=port)))
        yield RoundRobin(urls)


async def use_every_feature(client: Client) -> None:
    """What a user does in a session: each step may land on either replica."""
    tools = (await client.list_tools()).tools
    assert "chat" in {t.name for t in tools}
    said = await client.call_tool("chat", {"user_prompt": "from one replica"})
    assert not said.is_error, text_of(said)
    assert said.structured_content is not None
    chat_id = said.structured_content["chat_id"]
    # Written through one replica, read through the other (the shared database).
    listed = await client.call_tool("list_chats", {})
    assert chat_id in text_of(listed)
    resources = (await client.list_resources()).resources
    assert "apex://chats" in {str(r.uri) for r in resources}
    index = await client.read_resource("apex://chats")
    assert chat_id in "".join(getattr(c, "text", "") for c in index.contents)
    prompts = (await client.list_prompts()).prompts
    assert "deep_research" in {p.name for p in prompts}
    prompt = await client.get_prompt("deep_research", {"topic": "tides"})
    assert "tides" in json.dumps([p.model_dump(mode="json") for p in prompt.messages])
    chat_ref = ResourceTemplateReference(uri="apex://chats/{chat_id}")
    offered = await client.complete(chat_ref, {"name": "chat_id", "value": chat_id[:8]})
    assert offered.completion.values == [chat_id]


@pytest.mark.parametrize("setting", [{}, STATELESS], ids=["default", "stateless"])
async def test_a_2026_client_is_answered_by_alternating_replicas(
    env: dict[str, str], setting: dict[str, str]
) -> None:
    with replicas({**env, **setting}) as balancer:
        async with (
            httpx2.AsyncClient(transport=balancer, timeout=30) as http,
            Client(streamable_http_client(ENDPOINT, http_client=http), mode="2026-07-28") as client,
        ):
            await use_every_feature(client)
    assert {replica for _, replica, _ in balancer.sent} == {0, 1}
    assert all(status < 400 for _, _, status in balancer.sent), balancer.sent


async def test_a_handshake_client_is_answered_by_alternating_replicas_when_stateless(
    env: dict[str, str],
) -> None:
    with replicas({**env, **STATELESS}) as balancer:
        async with (
            httpx2.AsyncClient(transport=balancer, timeout=30) as http,
            Client(streamable_http_client(ENDPOINT, http_client=http), mode="legacy") as client,
        ):
            assert client.protocol_version == "2025-11-25"
            await use_every_feature(client)
    assert {replica for _, replica, _ in balancer.sent} == {0, 1}
    assert all(status < 400 for _, _, status in balancer.sent), balancer.sent


async def test_without_the_setting_a_handshake_clients_session_is_unknown_to_the_other_replica(
    env: dict[str, str],
) -> None:
    # What a 2025-11-25 client sends, step by step (the SDK's client sends some of them at
    # once, in no fixed order).
    accept = {"accept": "application/json, text/event-stream"}
    list_tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    with replicas(env) as balancer:
        async with httpx2.AsyncClient(transport=balancer, headers=accept, timeout=30) as http:
            opened = await http.post(ENDPOINT, json=INITIALIZE)
            session = {
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-11-25",
            }
            elsewhere = await http.post(ENDPOINT, json=list_tools, headers=session)
            back_home = await http.post(ENDPOINT, json=list_tools, headers=session)
    assert [replica for _, replica, _ in balancer.sent] == [0, 1, 0]
    assert opened.status_code == 200
    # The SDK's answer on the replica that did not open the session.
    assert elsewhere.status_code == 404
    assert elsewhere.json()["error"]["message"] == "Session not found"
    assert back_home.status_code == 200 and '"tools"' in back_home.text


async def test_stateless_mode_refuses_what_needs_a_session_saying_why(
    env: dict[str, str],
) -> None:
    with replicas({**env, **STATELESS}, count=1) as balancer:
        async with (
            httpx2.AsyncClient(transport=balancer, timeout=30) as http,
            Client(streamable_http_client(ENDPOINT, http_client=http), mode="legacy") as client,
        ):
            # Updates would have no session to go to: refused, not accepted and never sent.
            with (
                pytest.warns(MCPDeprecationWarning),
                pytest.raises(MCPError, match="not served with APEX_HTTP_STATELESS") as refused,
            ):
                await client.subscribe_resource("apex://chats")
            assert "subscriptions/listen" in str(refused.value)
            # The connection goes on.
            assert (await client.list_tools()).tools
        async with httpx2.AsyncClient(transport=balancer, base_url=f"http://{BALANCER}") as raw:
            sse = await raw.get("/sse")
    assert sse.status_code == 400
    assert sse.json()["message"].startswith(
        "the HTTP+SSE transport (/sse) is not served with APEX_HTTP_STATELESS"
    )


async def test_the_gateway_answers_from_either_replica(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "gateway.db", discover_local_miners=False)
    create = "/apex.v1.ApexService/CreateChatAndCompletion"
    request = m.CreateChatAndCompletionRequest(
        user_prompt="hello", chat_type="apex", completion_type="basic", title="t"
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    with ExitStack() as stack:
        urls = [stack.enter_context(serve_asgi(create_gateway_app(settings))) for _ in range(2)]
        balancer = RoundRobin(urls)
        async with httpx2.AsyncClient(
            transport=balancer, base_url="http://gateway.test", timeout=30
        ) as http:
            # A retried write (its reply lost) lands on the other replica: the same reply.
            keyed = {"idempotency-key": "write-1"}
            first = await http.post(create, json=request, headers=keyed)
            retried = await http.post(create, json=request, headers=keyed)
            listed = await http.post("/apex.v1.ApexService/GetChatSessions", json={})
    assert [method for method, _, _ in balancer.sent] == ["POST"] * 3
    assert [replica for _, replica, _ in balancer.sent] == [0, 1, 0]
    assert first.status_code == retried.status_code == listed.status_code == 200
    chat_id = first.json()["parsedChat"]["id"]
    assert retried.json()["parsedChat"]["id"] == chat_id
    assert [c["id"] for c in listed.json()["chatSessions"]] == [chat_id]


async def test_serve_stateless_opens_no_session(env: dict[str, str]) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "apex_mcp", "serve", "--http", "--stateless", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, server)
        async with httpx2.AsyncClient(
            headers={"accept": "application/json, text/event-stream"}, timeout=30
        ) as http:
            opened = await http.post(f"http://127.0.0.1:{port}/mcp", json=INITIALIZE)
    finally:
        server.kill()
        server.wait()
    assert opened.status_code == 200 and "serverInfo" in opened.text
    assert "mcp-session-id" not in opened.headers


def test_serve_stateless_is_for_http(env: dict[str, str]) -> None:
    done = run_process(
        [sys.executable, "-m", "apex_mcp", "serve", "--stateless"],
        what="apex-mcp serve --stateless to refuse",
        timeout=60,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "--stateless is for serving over HTTP: add --http" in done.stderr


async def test_a_handshake_client_hears_its_calls_log_messages_when_stateless(
    tmp_path: Path,
) -> None:
    heard: list[LoggingMessageNotificationParams] = []

    async def hear(params: LoggingMessageNotificationParams) -> None:
        heard.append(params)

    with serve_openai(FakeOpenAI(models=["m1"])) as healthy:
        miners = [
            {"name": "gone", "base_url": f"http://127.0.0.1:{free_port()}/v1", "models": ["m1"]},
            {"name": "healthy", "base_url": healthy, "models": ["m1"]},
        ]
        env = {
            **engine_env(tmp_path / "apex.db", healthy),
            "APEX_MINERS": json.dumps(miners),
            "APEX_HTTP_ALLOWED_HOSTS": json.dumps([BALANCER]),
            **STATELESS,
        }
        with replicas(env) as balancer:
            async with (
                httpx2.AsyncClient(transport=balancer, timeout=30) as http,
                Client(
                    streamable_http_client(ENDPOINT, http_client=http),
                    mode="legacy",
                    logging_callback=hear,
                ) as client,
            ):
                said = await client.call_tool("chat", {"user_prompt": "hi", "save": False})
    assert not said.is_error, text_of(said)
    # The failover's warning came on the call's own answer, from the replica that served it.
    assert [m.level for m in heard] == ["warning"], heard
    assert "gone" in str(heard[0].data)


async def test_a_stateless_call_whose_client_hangs_up_stops(tmp_path: Path) -> None:
    miner = FakeOpenAI(models=["m1"], stall_after=0)  # answers nothing until its client leaves
    with serve_openai(miner) as miner_url:
        env = {
            **engine_env(tmp_path / "apex.db", miner_url),
            "APEX_HTTP_ALLOWED_HOSTS": json.dumps([BALANCER]),
            **STATELESS,
        }
        with replicas(env, count=1) as balancer:
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "chat", "arguments": {"user_prompt": "hi"}},
            }
            headers = {
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": "2025-11-25",
            }
            async with httpx2.AsyncClient(transport=balancer, timeout=30) as http:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(partial(http.post, ENDPOINT, json=call, headers=headers))
                    with waiting_for("the miner to be asked", 30):
                        while not miner.requests:
                            await anyio.sleep(0.02)
                    tasks.cancel_scope.cancel()  # the client hangs up mid-call
                with waiting_for("the miner call to be cancelled", 30):
                    while not miner.disconnects:
                        await anyio.sleep(0.02)
    assert len(miner.requests) == 1 and miner.disconnects == 1
