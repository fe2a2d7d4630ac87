"""The server's own warnings and errors reach MCP clients as log notifications: by the level
each client sets, to the client whose request they concern, never with a secret; per session
when sessions bring their own settings. Driven by the SDK's client (its logging callback) over
streamable HTTP and stdio, with fake miners on 127.0.0.1: one that rejects its key, one that
is not there, one that answers."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import LoggingLevel, LoggingMessageNotificationParams, SetLevelRequestParams

from apex_mcp.server import client_logs
from apex_mcp.server.app import build_server
from apex_mcp.server.client_logs import ClientLogs, scrub
from apex_mcp.server.http import create_http_app
from tests.fakes.openai_server import FakeOpenAI, serve_openai
from tests.server.harness import settings_from, stdio_params, text_of
from tests.servers import free_port, serve_asgi

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

MINER_KEY = "sk-miner-SECRET-4242"  # the key the locked miner is sent, and echoes back
URL_PASSWORD = "pw-SECRET-7777"  # in the URL of the miner that is not there
TOKEN = "token-SECRET-9999"
SECRETS = (MINER_KEY, URL_PASSWORD, TOKEN)


@dataclass
class Heard:
    """What one client's logging callback received."""

    messages: list[LoggingMessageNotificationParams] = field(default_factory=list)

    async def __call__(self, params: LoggingMessageNotificationParams) -> None:
        self.messages.append(params)

    @property
    def texts(self) -> list[str]:
        return [str(m.data) for m in self.messages]


@contextmanager
def failing_over(tmp: Path) -> Iterator[dict[str, str]]:
    """An engine whose first miner rejects its key (and echoes it), the second is not there
    (its URL carries a password), and the third answers."""
    locked = FakeOpenAI(models=["m1"], api_key="the-key-it-wants")
    healthy = FakeOpenAI(models=["m1"])
    with serve_openai(locked) as locked_url, serve_openai(healthy) as healthy_url:
        miners = [
            {"name": "locked", "base_url": locked_url, "api_key": MINER_KEY, "models": ["m1"]},
            {
                "name": "gone",
                "base_url": f"http://alice:{URL_PASSWORD}@127.0.0.1:{free_port()}/v1",
                "models": ["m1"],
            },
            {"name": "healthy", "base_url": healthy_url, "models": ["m1"]},
        ]
        yield {
            "APEX_DB": str(tmp / "apex.db"),
            "APEX_MINERS": json.dumps(miners),
            "APEX_DISCOVER_LOCAL_MINERS": "false",
            "APEX_BACKEND": "local",
            "APEX_HTTP_TOKEN": TOKEN,
        }


@contextmanager
def http_server(env: dict[str, str]) -> Iterator[str]:
    settings = settings_from(env)
    port = free_port()
    app = create_http_app(build_server(settings), settings, "127.0.0.1", port)
    with serve_asgi(app, port=port) as url:
        yield url


@asynccontextmanager
async def connected(
    url: str, heard: Heard, *, mode: str = "legacy", query: str = "", **client: Any
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(timeout=30, headers=headers) as http:
        endpoint = f"{url}/mcp" + (f"?{query}" if query else "")
        transport = streamable_http_client(endpoint, http_client=http)
        async with Client(transport, mode=mode, logging_callback=heard, **client) as session:  # type: ignore[arg-type]
            yield session


async def chat(client: Client, prompt: str = "hi") -> dict[str, Any]:
    result = await client.call_tool("chat", {"user_prompt": prompt, "save": False})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Return once ``condition()`` holds; fail saying ``what`` was awaited if it never does."""
    with anyio.move_on_after(seconds):
        while not condition():
            await anyio.sleep(0.05)
        return
    raise AssertionError(f"gave up after {seconds:g} s waiting for {what}")


def assert_no_secret(*heard: Heard) -> None:
    for one in heard:
        for message in one.messages:
            dumped = message.model_dump_json()
            assert not any(secret in dumped for secret in SECRETS), dumped


async def test_logging_is_a_capability_and_set_level_answers(tmp_path: Path) -> None:
    with failing_over(tmp_path) as env, http_server(env) as url:
        async with connected(url, Heard()) as legacy:
            assert legacy.server_capabilities.logging is not None
            await legacy.set_logging_level("info")  # an empty result, no error
        async with connected(url, Heard(), mode="auto") as modern:
            # 2026-07-28 dropped logging/setLevel: each request opts in with _meta instead.
            assert modern.protocol_version == "2026-07-28"
            assert modern.server_capabilities.logging is not None
            with pytest.raises(MCPError, match="Method not found"):
                await modern.set_logging_level("info")


async def test_a_miner_failing_over_warns_the_client_that_asked_for_warnings(
    tmp_path: Path,
) -> None:
    asked_warning, asked_error, onlooker = Heard(), Heard(), Heard()
    with failing_over(tmp_path) as env, http_server(env) as url:
        async with (
            connected(url, asked_warning) as a,
            connected(url, asked_error) as b,
            connected(url, onlooker) as c,
        ):
            await a.set_logging_level("warning")
            await b.set_logging_level("error")
            await c.set_logging_level("debug")
            assert (await chat(b))["miner"] == "miner:healthy"
            assert (await chat(a))["miner"] == "miner:healthy"
            await c.send_ping()
    # What a request logs arrives before its answer, on its own stream.
    assert [(m.level, m.logger) for m in asked_warning.messages] == [
        ("warning", "apex_mcp.engine.miners"),
        ("warning", "apex_mcp.engine.miners"),
    ]
    locked, gone = asked_warning.texts
    assert locked.startswith("miner locked failed: HTTP 401")
    # The URL's credentials left it when the miner was configured (they are its basic auth).
    assert gone.startswith("miner gone failed: unreachable at http://127.0.0.1:")
    assert "alice" not in gone
    assert asked_error.messages == []  # it asked for errors only
    assert onlooker.messages == []  # the failovers were the other clients' business
    assert_no_secret(asked_warning, asked_error, onlooker)


async def test_a_2026_client_hears_what_its_requests_opt_in_to(tmp_path: Path) -> None:
    opted_in, silent = Heard(), Heard()
    with failing_over(tmp_path) as env, http_server(env) as url:
        async with connected(url, opted_in, mode="2026-07-28", log_level="warning") as a:
            await chat(a)
        async with connected(url, silent, mode="2026-07-28") as b:
            await chat(b)
    assert [t.split(":")[0] for t in opted_in.texts] == ["miner locked failed", "miner gone failed"]
    assert silent.messages == []  # no opt-in, no log messages
    assert_no_secret(opted_in)


async def test_a_research_job_failing_in_the_background_is_told(tmp_path: Path) -> None:
    dead = FakeOpenAI(models=["m1"])
    dead.fail(503)
    heard = Heard()
    with serve_openai(dead) as miner_url:
        env = {
            "APEX_DB": str(tmp_path / "apex.db"),
            "APEX_MINERS": json.dumps([{"name": "dead", "base_url": miner_url}]),
            "APEX_DISCOVER_LOCAL_MINERS": "false",
            "APEX_SEARCH_PROVIDER": "searxng",
            "APEX_SEARXNG_URL": f"http://127.0.0.1:{free_port()}",
            "APEX_HTTP_TOKEN": TOKEN,
        }
        with http_server(env) as url:
            async with connected(url, heard) as client:
                await client.set_logging_level("warning")
                started = await client.call_tool(
                    "deep_research_start", {"user_prompt": "a question", "save": False}
                )
                assert started.structured_content is not None, text_of(started)
                job_id = started.structured_content["job_id"]
                failed = f"deep-research job {job_id} failed"
                # The job runs in the background, for no one's call.
                await until(
                    lambda: any(t.startswith(failed) for t in heard.texts),
                    f"the log notification '{failed}'",
                )
    (told,) = [m for m in heard.messages if str(m.data).startswith(failed)]
    assert (told.level, told.logger) == ("warning", "apex_mcp.engine.research")
    assert "503" in str(told.data)


async def test_each_session_hears_only_its_own_logs(tmp_path: Path) -> None:
    """With per-session settings, a failure of Alice's miner reaches Alice, never Bob."""
    alice_miner, bob_miner = FakeOpenAI(models=["a1"]), FakeOpenAI(models=["b1"])
    alice_miner.fail(500)
    bob_miner.fail(502)
    alice, bob = Heard(), Heard()
    env = {
        "APEX_DB": str(tmp_path / "apex.db"),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_HTTP_SESSION_CONFIG": "true",
        "APEX_ALLOW_PRIVATE_ADDRESSES": "true",  # the fake miners are on 127.0.0.1
        "APEX_HTTP_TOKEN": TOKEN,
    }
    with serve_openai(alice_miner) as alice_url, serve_openai(bob_miner) as bob_url:
        alice_query = urlencode({"miner": alice_url, "minerApiKey": "sk-alice-SECRET-1"})
        bob_query = urlencode({"miner": bob_url, "minerApiKey": "sk-bob-SECRET-2"})
        with http_server(env) as url:
            async with (
                connected(url, alice, query=alice_query) as a,
                connected(url, bob, query=bob_query) as b,
            ):
                await a.set_logging_level("warning")
                await b.set_logging_level("warning")
                assert (await a.call_tool("chat", {"user_prompt": "hi"})).is_error
                assert (await b.call_tool("chat", {"user_prompt": "hi"})).is_error
    alice_host = alice_url.split("//")[1].split("/")[0]
    bob_host = bob_url.split("//")[1].split("/")[0]
    assert alice.texts == [f"miner {alice_host} failed: HTTP 500 (fake failure 500)"]
    assert bob.texts == [f"miner {bob_host} failed: HTTP 502 (fake failure 502)"]
    for text in alice.texts + bob.texts:
        assert "SECRET" not in text


async def test_over_stdio_a_warning_goes_to_stderr_and_to_the_client(tmp_path: Path) -> None:
    heard = Heard()
    stderr = tmp_path / "stderr.txt"
    with failing_over(tmp_path) as env, stderr.open("w") as errlog:
        transport = stdio_client(stdio_params(env), errlog=errlog)
        async with Client(transport, mode="legacy", logging_callback=heard) as client:  # type: ignore[arg-type]
            await chat(client)  # no setLevel: warnings and above by default
    assert [t.split(":")[0] for t in heard.texts] == ["miner locked failed", "miner gone failed"]
    assert "WARNING apex_mcp.engine.miners: miner locked failed" in stderr.read_text()
    assert_no_secret(heard)


# --- the forwarding itself --------------------------------------------------------------------


def test_scrub_takes_out_secrets_and_what_urls_carry() -> None:
    text = (
        "miner x failed at https://bob:hunter2@api.example.com/v1?key=abc&x=1 "
        "with key sk-123456 (and http://plain.example.com/v1)"
    )
    assert scrub(text, {"sk-123456"}) == (
        "miner x failed at https://***@api.example.com/v1?*** with key *** "
        "(and http://plain.example.com/v1)"
    )


class Listener:
    """A client connection as the forwarding sees one: what ``notify`` sent, or a connection
    that fails or never answers."""

    def __init__(self, behaviour: str = "listens") -> None:
        self.behaviour = behaviour
        self.sent: list[dict[str, Any]] = []

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        if self.behaviour == "gone":
            raise anyio.BrokenResourceError
        if self.behaviour == "stuck":
            await anyio.sleep_forever()
        self.sent.append(params)


async def listening_at(forwarding: ClientLogs, level: LoggingLevel, listener: Listener) -> None:
    """``listener`` asks ``forwarding`` for ``level``, as a handshake-era client's
    ``logging/setLevel`` does (the request's session holds the client's connection)."""
    session = SimpleNamespace(_connection=listener)
    request = SimpleNamespace(session=session, protocol_version="2025-11-25")
    await forwarding.set_level(request, SetLevelRequestParams(level=level))  # type: ignore[arg-type]


async def test_a_client_gone_or_stuck_costs_a_bounded_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_logs, "SEND_TIMEOUT", 0.2)
    forwarding = ClientLogs(settings_from({"APEX_DB": str(tmp_path / "apex.db")}))
    gone, stuck, listening = Listener("gone"), Listener("stuck"), Listener()
    async with anyio.create_task_group() as tg:
        await tg.start(forwarding.run)
        for listener in (gone, stuck, listening):
            await listening_at(forwarding, "info", listener)
        logging.getLogger("apex_mcp.test").warning("first")
        logging.getLogger("apex_mcp.test").warning("second")
        # The stuck client holds each one back 0.2 s at most.
        await until(lambda: len(listening.sent) == 2, "both records sent to the listener")
        tg.cancel_scope.cancel()
    assert [p["data"] for p in listening.sent] == ["first", "second"]


async def test_a_client_hears_the_levels_it_asked_for(tmp_path: Path) -> None:
    forwarding = ClientLogs(settings_from({"APEX_DB": str(tmp_path / "apex.db")}))
    heard: dict[LoggingLevel, Listener] = {"error": Listener(), "info": Listener()}
    async with anyio.create_task_group() as tg:
        await tg.start(forwarding.run)
        for level, listener in heard.items():
            await listening_at(forwarding, level, listener)
        logging.getLogger("apex_mcp.test").warning("a warning")
        logging.getLogger("apex_mcp.test").error("an error")
        await until(lambda: len(heard["info"].sent) == 2, "both records at level info")
        tg.cancel_scope.cancel()
    assert [p["data"] for p in heard["info"].sent] == ["a warning", "an error"]
    assert [p["data"] for p in heard["error"].sent] == ["an error"]


async def test_the_backend_failing_to_start_is_told_to_every_session(tmp_path: Path) -> None:
    """Not one session's business but the server's: told even where sessions bring their own
    settings (and so hear nothing of each other)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {
        "APEX_DB": str(blocker / "apex.db"),
        "APEX_DISCOVER_LOCAL_MINERS": "false",
        "APEX_HTTP_SESSION_CONFIG": "true",
        "APEX_HTTP_TOKEN": TOKEN,
    }
    heard = Heard()
    with http_server(env) as url:
        async with connected(url, heard) as client:
            assert (await client.call_tool("list_chats", {})).is_error
            # Logged by the backend's own task, beside the call.
            await until(lambda: bool(heard.messages), "the backend's failure as a log message")
    (told,) = heard.messages
    assert (told.level, told.logger) == ("error", "apex_mcp.server.app")
    assert str(told.data).startswith("the Apex backend could not start: ")
