"""Hosted over HTTP with per-session configuration (APEX_HTTP_SESSION_CONFIG), as Smithery runs
it: each session's query string names its miner or Apex server, and each session is a user of
its own. Driven by the SDK's client against the real HTTP app on 127.0.0.1, with fake miners
that require their keys."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from apex_mcp.config import Settings
from apex_mcp.gateway import create_gateway_app
from apex_mcp.server.app import build_server
from apex_mcp.server.http import create_http_app
from apex_mcp.server.state import RESOURCE_NOT_FOUND
from tests.engine.test_research import Script
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.fakes.web import FakeSearxng, FakeWeb, hit, serve_searxng, serve_web
from tests.jsonrpc import INITIALIZE
from tests.server.harness import settings_from, text_of
from tests.servers import free_port, serve_asgi, wait_exit, wait_listening

pytestmark = pytest.mark.anyio

OPERATOR_KEY = "sk-operator-0000"
ALICE_KEY = "sk-alice-SECRET-1111"
BOB_KEY = "sk-bob-SECRET-2222"


@dataclass
class Hosted:
    url: str
    operator: FakeOpenAI  # the server's own miner (APEX_MINER), for sessions that name none
    alice: FakeOpenAI
    alice_url: str
    bob: FakeOpenAI
    bob_url: str
    env: dict[str, str]

    def query(self, who: str, **extra: str) -> str:
        if who == "alice":
            config = {"miner": self.alice_url, "minerApiKey": ALICE_KEY, "minerModel": "a1"}
        elif who == "bob":
            config = {"miner": self.bob_url, "minerApiKey": BOB_KEY}
        else:
            config = {}
        return urlencode({**config, **extra})


def hosted_env(tmp: Path, operator_url: str) -> dict[str, str]:
    return {
        "APEX_DB": str(tmp / "apex.db"),
        "APEX_MINER": operator_url,
        "APEX_MINER_API_KEY": OPERATOR_KEY,
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_HTTP_SESSION_CONFIG": "true",
        "APEX_ALLOW_PRIVATE_ADDRESSES": "true",  # the fake miners are on 127.0.0.1
        "APEX_RESEARCH_POLL_SECONDS": "0.1",
    }


@contextmanager
def hosting(tmp: Path, **env: str) -> Iterator[Hosted]:
    operator = FakeOpenAI(models=["op"], api_key=OPERATOR_KEY, answer="from the operator")
    alice = FakeOpenAI(models=["a1"], api_key=ALICE_KEY, answer="from alice's miner")
    bob = FakeOpenAI(models=["b1"], api_key=BOB_KEY, answer="from bob's miner")
    with serve_openai(operator) as op_url, serve_openai(alice) as a_url, serve_openai(bob) as b_url:
        full = {**hosted_env(tmp, op_url), **env}
        settings = settings_from(full)
        port = free_port()
        app = create_http_app(build_server(settings), settings, "127.0.0.1", port)
        with serve_asgi(app, port=port) as url:
            yield Hosted(url, operator, alice, a_url, bob, b_url, full)


@asynccontextmanager
async def session(url: str, query: str = "", mode: str = "legacy") -> AsyncIterator[Client]:
    """An MCP session over streamable HTTP whose every request carries ``query``; by default
    of the handshake era, which has session ids (2026-07-28 requests stand alone)."""
    async with httpx2.AsyncClient(timeout=30) as http:
        endpoint = f"{url}/mcp" + (f"?{query}" if query else "")
        transport = streamable_http_client(endpoint, http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    out: dict[str, Any] | None = result.structured_content
    assert out is not None
    return out


async def chat_ids(client: Client) -> set[str]:
    return {c["id"] for c in (await call(client, "list_chats"))["chats"]}


def keys_sent(fake: FakeOpenAI) -> set[str]:
    return {c.headers.get("authorization", "") for c in fake.calls}


async def test_each_session_chats_with_its_own_miner_and_key(tmp_path: Path) -> None:
    with hosting(tmp_path) as h:
        async with session(h.url, h.query("alice")) as alice:
            said = await call(alice, "chat", user_prompt="hello from alice")
        async with session(h.url, h.query("bob")) as bob:
            said_bob = await call(bob, "chat", user_prompt="hello from bob")
        async with session(h.url) as nobody:
            said_nobody = await call(nobody, "chat", user_prompt="hello")

    assert said["answer"] == "from alice's miner"
    assert said_bob["answer"] == "from bob's miner"
    assert said_nobody["answer"] == "from the operator"  # no miner named: the server's own
    assert keys_sent(h.alice) == {f"Bearer {ALICE_KEY}"}
    assert keys_sent(h.bob) == {f"Bearer {BOB_KEY}"}
    assert keys_sent(h.operator) == {f"Bearer {OPERATOR_KEY}"}
    assert [r["model"] for r in h.alice.requests] == ["a1"]  # minerModel is honoured


async def test_sessions_are_users_of_their_own_and_a_key_finds_its_chats_again(
    tmp_path: Path,
) -> None:
    with hosting(tmp_path) as h:
        async with session(h.url, h.query("alice")) as alice:
            mine = (await call(alice, "create_chat", user_prompt="alice's notes"))["chat"]["id"]
        async with session(h.url, h.query("bob")) as bob:
            assert mine not in await chat_ids(bob)
            refused = await bob.call_tool("get_chat", {"chat_id": mine})
            assert refused.is_error and "not_found" in text_of(refused)
        async with session(h.url) as first, session(h.url) as second:
            theirs = (await call(first, "create_chat", user_prompt="anonymous"))["chat"]["id"]
            assert await chat_ids(first) == {theirs}  # a session without a key keeps its own
            assert await chat_ids(second) == set()  # and no other session sees them
        # The same key in a later session (another model, even) finds the same chats.
        again = urlencode({"miner": h.alice_url, "minerApiKey": ALICE_KEY, "minerModel": "a2"})
        async with session(h.url, again) as alice_later:
            assert await chat_ids(alice_later) == {mine}
            read = await alice_later.read_resource("apex://chats")
            assert mine in read.contents[0].text  # type: ignore[union-attr]


async def test_smithery_base64_config_works_like_the_dot_notation(tmp_path: Path) -> None:
    with hosting(tmp_path) as h:
        config = {"miner": h.alice_url, "minerApiKey": ALICE_KEY}
        encoded = base64.b64encode(json.dumps(config).encode()).decode()
        query = urlencode({"config": encoded, "api_key": "smithery-own", "profile": "p"})
        async with session(h.url, query) as alice:
            said = await call(alice, "chat", user_prompt="hi")
    assert said["answer"] == "from alice's miner"
    assert keys_sent(h.alice) == {f"Bearer {ALICE_KEY}"}


async def test_a_bad_configuration_is_refused_with_what_to_fix_and_no_key(tmp_path: Path) -> None:
    with hosting(tmp_path) as h:
        async with httpx2.AsyncClient(timeout=10) as http:
            for query, fix in [
                (urlencode({"minerApiKey": ALICE_KEY}), "need miner"),
                (urlencode({"miner": "olama", "minerApiKey": ALICE_KEY}), "unknown miner preset"),
                (urlencode({"minerApikey": ALICE_KEY}), "unknown session setting minerApikey"),
                (
                    urlencode({"miner": "ollama", "apexApiKey": ALICE_KEY}),
                    "not both",
                ),
            ]:
                answer = await http.post(
                    f"{h.url}/mcp?{query}",
                    json=INITIALIZE,
                    headers={"accept": "application/json, text/event-stream"},
                )
                assert answer.status_code == 400, query
                body = answer.json()
                assert body["error"] == "invalid_session_config"
                assert fix in body["message"]
                assert ALICE_KEY not in answer.text
            assert (await http.get(f"{h.url}/healthz")).status_code == 200


async def test_a_sessions_private_miner_is_refused_unless_allowed(tmp_path: Path) -> None:
    with hosting(tmp_path, APEX_ALLOW_PRIVATE_ADDRESSES="false") as h:
        async with session(h.url, h.query("alice")) as alice:
            result = await alice.call_tool("chat", {"user_prompt": "hi"})
            listed = await alice.call_tool("list_chats", {})
    assert result.is_error
    assert "permission_denied" in text_of(result) and "private address" in text_of(result)
    assert ALICE_KEY not in text_of(result)
    assert h.alice.calls == []  # never reached
    assert listed.is_error  # the session cannot be served at all, rather than as someone else


@pytest.fixture
def research_world(tmp_path: Path) -> Iterator[tuple[dict[str, str], FakeWeb]]:
    site, search = FakeWeb(), FakeSearxng()
    with serve_web(site) as base, serve_searxng(search) as searxng:
        search.hits = [hit(base, "/bees"), hit(base, "/tides")]
        yield {"APEX_SEARCH_PROVIDER": "searxng", "APEX_SEARXNG_URL": searxng}, site


async def test_a_sessions_research_job_runs_on_its_miner_and_no_key_is_stored(
    tmp_path: Path, research_world: tuple[dict[str, str], FakeWeb]
) -> None:
    env, site = research_world
    with hosting(tmp_path, **env) as h:
        h.alice.reply = Script()
        async with session(h.url, h.query("alice")) as alice:
            job = await call(alice, "deep_research_start", user_prompt="How do bees find nests?")
            status: dict[str, Any] = {"status": "pending", "next_seq_id": 0}
            while status["status"] not in ("completed", "failed", "cancelled"):
                status = await call(
                    alice,
                    "deep_research_status",
                    job_id=job["job_id"],
                    last_seq_id=status["next_seq_id"],
                    wait_seconds=20,
                )
        async with session(h.url, h.query("bob")) as bob:
            theirs = await bob.call_tool("deep_research_status", {"job_id": job["job_id"]})
            # Nor does bob hear of alice's job: subscribing to it is refused, as not found.
            with pytest.warns(Warning), pytest.raises(MCPError, match="no job") as refused:
                await bob.subscribe_resource(f"apex://research/{job['job_id']}")
            assert refused.value.error.code == RESOURCE_NOT_FOUND

    assert status["status"] == "completed", status
    assert site.url("/bees") in status["report"]
    assert len(h.alice.requests) >= 2  # plan, notes, report: all on alice's miner
    assert h.operator.requests == []
    assert keys_sent(h.alice) == {f"Bearer {ALICE_KEY}"}
    assert theirs.is_error and "not_found" in text_of(theirs)
    for path in tmp_path.glob("apex.db*"):
        assert ALICE_KEY.encode() not in path.read_bytes()


async def test_a_session_can_use_an_apex_server_of_its_own(tmp_path: Path) -> None:
    miner = FakeOpenAI(models=["g1"], answer="from the gateway")
    with serve_openai(miner) as miner_url:
        gateway = Settings(
            db=tmp_path / "gateway.db",
            miners=[{"name": "g", "base_url": miner_url}],
            discover_local_miners=False,
            gateway_keys={"carol": "gk-carol-SECRET"},
        )
        with serve_asgi(create_gateway_app(gateway)) as gateway_url, hosting(tmp_path) as h:
            own = urlencode({"apexBaseUrl": gateway_url, "apexApiKey": "gk-carol-SECRET"})
            async with session(h.url, own) as carol:
                said = await call(carol, "chat", user_prompt="hi")
                kept = (await call(carol, "create_chat", user_prompt="kept"))["chat"]["id"]
                assert kept in await chat_ids(carol)
            wrong = urlencode({"apexBaseUrl": gateway_url, "apexApiKey": "gk-wrong"})
            async with session(h.url, wrong) as mallory:
                refused = await mallory.call_tool("list_chats", {})
            async with session(h.url) as nobody:
                assert kept not in await chat_ids(nobody)  # it lives on carol's server
    assert said["answer"] == "from the gateway"
    assert refused.is_error and "unauthenticated" in text_of(refused)
    assert "gk-wrong" not in text_of(refused)


def test_the_server_process_starts_beyond_loopback_and_logs_no_key(tmp_path: Path) -> None:
    """As the container runs it: `serve --http --host 0.0.0.0` with no token, DEBUG logs."""
    operator = FakeOpenAI(models=["op"], api_key=OPERATOR_KEY)
    alice = FakeOpenAI(models=["a1"], api_key=ALICE_KEY, answer="hi alice")
    with serve_openai(operator) as op_url, serve_openai(alice) as alice_url:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("APEX_")},
            **hosted_env(tmp_path, op_url),
            "APEX_LOG_LEVEL": "DEBUG",
        }
        command = [sys.executable, "-m", "apex_mcp", "serve", "--http", "--host", "0.0.0.0"]
        log_file = tmp_path / "server.log"  # a file, not a pipe: DEBUG logs never block it
        with log_file.open("wb") as log:
            server = subprocess.Popen(
                [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_listening(port, server)
            query = urlencode({"miner": alice_url, "minerApiKey": ALICE_KEY})

            async def use() -> str:
                async with session(f"http://127.0.0.1:{port}", query) as client:
                    said = await call(client, "chat", user_prompt="hello")
                    return str(said["answer"])

            said = anyio.run(use)
        finally:
            server.terminate()
            wait_exit(server, what="the hosted HTTP server to stop at SIGTERM", timeout=30)
    logs = log_file.read_text()
    assert said == "hi alice"
    assert "without a token" in logs  # it says what it trusts
    assert "DEBUG" in logs  # the logs were on, and still:
    assert ALICE_KEY not in logs and OPERATOR_KEY not in logs
    assert urlencode({"minerApiKey": ALICE_KEY}) not in logs


async def test_over_the_stateless_protocol_a_key_still_names_its_user(tmp_path: Path) -> None:
    """2026-07-28 requests carry no session id: a key is what keeps a user's chats."""
    with hosting(tmp_path) as h:
        async with session(h.url, h.query("alice"), mode="auto") as alice:
            assert alice.protocol_version == "2026-07-28"
            kept = (await call(alice, "create_chat", user_prompt="kept"))["chat"]["id"]
            assert await chat_ids(alice) == {kept}
        async with session(h.url, mode="auto") as nobody:
            made = (await call(nobody, "create_chat", user_prompt="lost"))["chat"]["id"]
            assert made not in await chat_ids(nobody)  # each keyless request stands alone
