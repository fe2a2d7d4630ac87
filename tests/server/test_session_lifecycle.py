"""Sessions over streamable HTTP, spoken as raw JSON-RPC so that a test can do what a client
should not: replay a session id, forge one, hang up mid-call, open a thousand sessions.

- a keyless session's user comes from its live connection, never from ``mcp-session-id``;
- session ids never reach the logs;
- an ended session leaves no subscription behind;
- a client that hangs up mid-call stops the miner call it started.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from apex_mcp.server.app import build_server, running_state
from apex_mcp.server.http import create_http_app
from apex_mcp.server.state import AppState
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.jsonrpc import INITIALIZE, INITIALIZED
from tests.server.harness import settings_from
from tests.server.test_hosted_sessions import hosted_env
from tests.servers import free_port, serve_asgi, waiting_for

pytestmark = pytest.mark.anyio

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
HANDSHAKE = "2025-11-25"
MODERN = "2026-07-28"


@dataclass
class Served:
    url: str
    miner: FakeOpenAI
    state: AppState


@contextmanager
def served(tmp: Path, miner: FakeOpenAI | None = None, **env: str) -> Iterator[Served]:
    """The real HTTP app on 127.0.0.1, hosted with per-session configuration, its miner a fake."""
    fake = miner or FakeOpenAI(models=["op"], answer="hello")
    with serve_openai(fake) as miner_url:
        settings = settings_from({**hosted_env(tmp, miner_url), "APEX_TIMEOUT": "120", **env})
        port = free_port()
        mcp = build_server(settings)
        with serve_asgi(create_http_app(mcp, settings, "127.0.0.1", port), port=port) as url:
            yield Served(url, fake, running_state(mcp))


def answer_of(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a JSON or SSE response."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        found: dict[str, Any] = json.loads(data[-1])
        return found
    answer: dict[str, Any] = response.json()
    return answer


class Raw:
    """One client speaking JSON-RPC over HTTP by hand."""

    def __init__(self, http: httpx2.AsyncClient, url: str) -> None:
        self.http, self.url = http, url + "/mcp"
        self.session_id: str | None = None
        self._ids = 10

    async def open(self) -> str:
        response = await self.http.post(self.url, json=INITIALIZE, headers=ACCEPT)
        assert response.status_code == 200, response.text
        self.session_id = response.headers["mcp-session-id"]
        await self.notify(INITIALIZED)
        return self.session_id

    def headers(self, version: str = HANDSHAKE, session_id: str | None = None) -> dict[str, str]:
        headers = {**ACCEPT, "mcp-protocol-version": version}
        sid = session_id or self.session_id
        if sid is not None:
            headers["mcp-session-id"] = sid
        return headers

    async def notify(self, message: dict[str, Any]) -> None:
        response = await self.http.post(self.url, json=message, headers=self.headers())
        assert response.status_code == 202, response.text

    def request(self, method: str, params: dict[str, Any], version: str) -> dict[str, Any]:
        self._ids += 1
        if version == MODERN:
            meta = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            params = {**params, "_meta": meta}
        return {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}

    async def post(
        self,
        method: str,
        params: dict[str, Any],
        *,
        version: str = HANDSHAKE,
        session_id: str | None = None,
    ) -> httpx2.Response:
        headers = self.headers(version, session_id)
        if version == MODERN:
            headers["mcp-method"] = method
            if "name" in params:
                headers["mcp-name"] = params["name"]
            elif "uri" in params:
                headers["mcp-name"] = params["uri"]
        body = self.request(method, params, version)
        return await self.http.post(self.url, json=body, headers=headers)

    async def tool(self, name: str, **arguments: Any) -> dict[str, Any]:
        answer = answer_of(await self.post("tools/call", {"name": name, "arguments": arguments}))
        result: dict[str, Any] = answer["result"]
        assert not result.get("isError"), result
        return result["structuredContent"]  # type: ignore[no-any-return]

    async def close(self) -> None:
        response = await self.http.delete(self.url, headers=self.headers())
        assert response.status_code in (200, 204), response.text


@asynccontextmanager
async def raw(url: str) -> AsyncIterator[Raw]:
    async with httpx2.AsyncClient(timeout=60) as http:
        yield Raw(http, url)


async def listed_by_forger(client: Raw, session_id: str, version: str) -> tuple[int, str]:
    """What a request carrying someone's session id gets from list_chats: status and text."""
    response = await client.post(
        "tools/call",
        {"name": "list_chats", "arguments": {}},
        version=version,
        session_id=session_id,
    )
    return response.status_code, response.text


async def test_a_replayed_or_forged_session_id_reads_none_of_that_sessions_chats(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with served(tmp_path) as s:
        async with raw(s.url) as alice, raw(s.url) as mallory:
            alice_id = await alice.open()
            chat = (await alice.tool("create_chat", user_prompt="alice's secret"))["chat"]["id"]
            assert chat in json.dumps(await alice.tool("list_chats"))  # she sees it herself

            # While her session lives: her id on a 2026-07-28 request (no session there).
            status, text = await listed_by_forger(mallory, alice_id, MODERN)
            assert status == 200 and chat not in text and "alice's secret" not in text
            read = await mallory.post(
                "resources/read", {"uri": f"apex://chats/{chat}"}, version=MODERN,
                session_id=alice_id,
            )  # fmt: skip
            assert "alice's secret" not in read.text

            await alice.close()  # DELETE: the session ends
            for version in (HANDSHAKE, MODERN):
                status, text = await listed_by_forger(mallory, alice_id, version)
                assert chat not in text and "alice's secret" not in text
                if version == HANDSHAKE:
                    assert status == 404  # the SDK forgets the session

            # Two live sessions without keys: neither sees the other's chats.
            first_id, second_id = await mallory.open(), None
            async with raw(s.url) as second:
                second_id = await second.open()
                mine = (await mallory.tool("create_chat", user_prompt="first's"))["chat"]["id"]
                theirs = json.dumps(await second.tool("list_chats"))
                assert mine not in theirs and chat not in theirs
                await second.close()
            await mallory.close()

    # The server's logs (this test's own HTTP client logs the headers it receives).
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("mcp.", "apex_mcp"))
    )
    assert "Created new transport" in logged  # the SDK logged its sessions, and still:
    for session_id in (alice_id, first_id, second_id):
        assert session_id not in logged


async def test_subscriptions_of_ended_sessions_are_freed(tmp_path: Path) -> None:
    """600 sessions subscribe and end (DELETE): the subscription table empties and memory
    stays flat (each ended session used to stay, about 17.5 KB apiece: 10 MB here)."""
    with served(tmp_path) as s:
        async with raw(s.url) as client:

            async def subscribe_and_end(index: int) -> None:
                await client.open()
                # (A research job's URI is refused for a job the caller cannot read.)
                for uri in ("apex://chats", f"apex://chats/chat-{index}"):
                    answer = answer_of(await client.post("resources/subscribe", {"uri": uri}))
                    assert "result" in answer, answer
                await client.close()

            for index in range(100):  # warm up: caches, pools, code paths
                await subscribe_and_end(index)
            with waiting_for("the warm-up sessions' subscriptions to be freed", 30):
                while s.state.subscribers:
                    await anyio.sleep(0.05)
            gc.collect()
            before = rss_bytes()
            for index in range(100, 700):
                await subscribe_and_end(index)
            with waiting_for("ended sessions' subscriptions to be freed", 30):
                while s.state.subscribers:
                    await anyio.sleep(0.05)
            gc.collect()
            growth = rss_bytes() - before
    assert s.state.subscribers == {}
    assert growth < 4 * 1024 * 1024, f"RSS grew {growth / 1e6:.1f} MB over 600 sessions"


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.parametrize("version", [HANDSHAKE, MODERN])
async def test_a_client_that_hangs_up_stops_the_miner_call(tmp_path: Path, version: str) -> None:
    miner = FakeOpenAI(models=["op"], stall_after=0)  # answers nothing until its client leaves
    with served(tmp_path, miner) as s:
        async with raw(s.url) as client:
            if version == HANDSHAKE:
                await client.open()
            async with anyio.create_task_group() as tasks:
                params = {"name": "chat", "arguments": {"user_prompt": "hi"}}
                tasks.start_soon(partial(client.post, "tools/call", params, version=version))
                with waiting_for("the miner to be asked", 30):
                    while not miner.requests:
                        await anyio.sleep(0.02)
                tasks.cancel_scope.cancel()  # the client hangs up mid-call
            with waiting_for("the miner call to be cancelled (its client to disconnect)", 30):
                while not miner.disconnects:
                    await anyio.sleep(0.02)
    assert len(miner.requests) == 1 and miner.disconnects == 1


async def test_a_client_that_closes_its_sse_stream_stops_the_miner_call(tmp_path: Path) -> None:
    """The 2024-11-05 transport: the answers ride the /sse stream; closing it ends the call."""
    miner = FakeOpenAI(models=["op"], stall_after=0)
    with served(tmp_path, miner, APEX_HTTP_SESSION_CONFIG="false") as s:
        async with httpx2.AsyncClient(timeout=60) as http:
            async with http.stream("GET", f"{s.url}/sse") as events:
                lines = events.aiter_lines()  # kept: a dropped iterator would close the stream
                async for line in lines:
                    if line.startswith("data:"):
                        endpoint = s.url + line[5:].strip()
                        break
                handshake = {**INITIALIZE["params"], "protocolVersion": "2024-11-05"}
                await http.post(endpoint, json={**INITIALIZE, "params": handshake})
                await http.post(endpoint, json=INITIALIZED)
                call = {"name": "chat", "arguments": {"user_prompt": "hi"}}
                request = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": call}
                await http.post(endpoint, json=request)
                with waiting_for("the miner to be asked", 30):
                    while not miner.requests:
                        await anyio.sleep(0.02)
            # the stream is closed: the client went away
            with waiting_for("the miner call to be cancelled (its client to disconnect)", 30):
                while not miner.disconnects:
                    await anyio.sleep(0.02)
    assert len(miner.requests) == 1 and miner.disconnects == 1
