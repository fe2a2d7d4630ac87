"""Cancellation, toolsets, read-only mode, HTTP auth and Origin checks, bad input, and the
snapshot of what a model sees (tools/list)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from pydantic import SecretStr

from apex_mcp.server.app import build_server
from apex_mcp.server.http import create_http_app
from tests.jsonrpc import INITIALIZE
from tests.server.harness import READ_TOOLS, Backend, backend, connect, settings_from, text_of
from tests.servers import free_port, serve_asgi, waiting_for

pytestmark = pytest.mark.anyio

SNAPSHOTS = Path(__file__).parent / "snapshots" / "tools"  # one file per tool: a diff names it


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Backend]:
    with backend("local", tmp_path) as b:
        yield b


async def test_cancelling_a_chat_cancels_its_upstream_request(local: Backend) -> None:
    local.fake.stall_after = 2  # the answer starts, then hangs
    async with connect("stdio", local.env) as client:
        with anyio.move_on_after(2):
            await client.call_tool("chat", {"user_prompt": "a long story", "save": False})
        with waiting_for("the miner to see the cancelled chat's request closed", 10):
            while local.fake.disconnects == 0:
                await anyio.sleep(0.05)
        # The server is still there for the next call.
        local.fake.stall_after = None
        again = await client.call_tool("chat", {"user_prompt": "short", "save": False})
    assert again.structured_content is not None
    assert again.structured_content["answer"] == "echo: short"


async def test_toolsets_serve_only_their_tools(local: Backend) -> None:
    settings = local.settings()
    async with Client(build_server(settings, ["search", "history"])) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == {
        "web_search",
        "create_chat",
        "list_chats",
        "get_chat",
        "update_chat",
        "delete_chats",
        "search_chats",
        "create_completion",
        "get_completion",
        "update_completion",
        "delete_completions",
    }
    async with connect("stdio", local.env, "--toolsets", "chat") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["chat"]


async def test_read_only_mode_hides_every_tool_that_changes_data(local: Backend) -> None:
    async with connect("stdio", local.env, "--read-only") as client:
        tools = (await client.list_tools()).tools
        blocked = await client.call_tool("delete_chats", {"chat_ids": ["x"]})
    assert {t.name for t in tools} == READ_TOOLS
    assert all(t.annotations and t.annotations.read_only_hint for t in tools)
    assert blocked.is_error and "Unknown tool" in text_of(blocked)


async def test_annotations_tell_the_truth(local: Backend) -> None:
    async with Client(build_server(local.settings())) as client:
        tools = {t.name: t.annotations for t in (await client.list_tools()).tools}
    for name in ("delete_chats", "delete_completions", "update_chat", "update_completion"):
        assert tools[name] is not None and tools[name].destructive_hint is True
    for name in ("list_chats", "get_chat", "search_chats", "get_completion", "web_search"):
        assert tools[name] is not None and tools[name].read_only_hint is True
    for name in ("chat", "web_search", "deep_research_start"):
        assert tools[name] is not None and tools[name].open_world_hint is True
    assert tools["list_chats"] is not None and tools["list_chats"].open_world_hint is False


async def test_pagination_of_chats(local: Backend) -> None:
    async with Client(build_server(local.settings())) as client:
        for i in range(5):
            await client.call_tool("create_chat", {"user_prompt": f"chat number {i}"})
        titles, cursor = [], None
        while True:
            args: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            out = (await client.call_tool("list_chats", args)).structured_content
            assert out is not None
            titles += [c["title"] for c in out["chats"]]
            cursor = out.get("next_cursor")
            if cursor is None:
                break
    assert titles == [f"chat number {i}" for i in reversed(range(5))]


async def test_bad_input_gets_a_clear_tool_error_and_the_server_keeps_serving(
    local: Backend,
) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("chat", {}, "user_prompt or messages"),
        ("chat", {"user_prompt": "x", "temperature": "hot"}, "temperature"),
        ("chat", {"user_prompt": "x", "max_new_tokens": -5}, "max_new_tokens"),
        ("get_chat", {}, "chat_id"),
        ("get_chat", {"chat_id": "not-a-uuid"}, "invalid_argument"),
        ("get_chat", {"chat_id": "00000000-0000-4000-8000-000000000000"}, "not_found"),
        ("get_completion", {"completion_id": "00000000-0000-4000-8000-000000000000"}, "not_found"),
        ("delete_chats", {"chat_ids": []}, "chat_ids"),
        ("delete_chats", {"chat_ids": "abc"}, "chat_ids"),
        (
            "update_chat",
            {"chat_id": "00000000-0000-4000-8000-000000000000"},
            "title or a chat_type",
        ),
        ("create_chat", {"user_prompt": "x" * 2_000_000}, "invalid_argument"),
        ("create_chat", {"user_prompt": "p", "chat_type": "video"}, "chat_type"),
        ("list_chats", {"limit": 0}, "limit"),
        ("no_such_tool", {}, "Unknown tool"),
    ]
    async with Client(build_server(local.settings())) as client:
        for name, arguments, fragment in cases:
            result = await client.call_tool(name, arguments)
            assert result.is_error, (name, arguments)
            assert fragment in text_of(result), (name, text_of(result)[:300])
        unicode = await client.call_tool(
            "create_chat", {"user_prompt": "こんにちは 🌍 \u202e عربى"}
        )
        assert not unicode.is_error
        found = await client.call_tool("search_chats", {"search_term": "こんにちは"})
        assert found.structured_content is not None and len(found.structured_content["chats"]) == 1


async def test_chat_with_no_miner_says_how_to_configure_one(tmp_path: Path) -> None:
    env = {"APEX_DB": str(tmp_path / "a.db"), "APEX_DISCOVER_LOCAL_MINERS": "false"}
    async with Client(build_server(settings_from(env))) as client:
        result = await client.call_tool("chat", {"user_prompt": "hello"})
        listed = (await client.call_tool("list_chats", {})).structured_content
    assert result.is_error and "APEX_MINER" in text_of(result)
    assert listed is not None and len(listed["chats"]) == 1  # the prompt is kept, marked failed


# --- HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def http_url(local: Backend) -> Iterator[str]:
    settings = local.settings().model_copy(update={"http_token": SecretStr("tok-123")})
    port = free_port()
    with serve_asgi(
        create_http_app(build_server(settings), settings, "127.0.0.1", port), port=port
    ) as url:
        yield url


ACCEPT = {"accept": "application/json, text/event-stream"}


async def test_http_requires_the_bearer_token(http_url: str) -> None:
    async with httpx2.AsyncClient(base_url=http_url) as http:
        anonymous = await http.post("/mcp", json=INITIALIZE, headers=ACCEPT)
        wrong = await http.post(
            "/mcp", json=INITIALIZE, headers={**ACCEPT, "authorization": "Bearer nope"}
        )
        right = await http.post(
            "/mcp", json=INITIALIZE, headers={**ACCEPT, "authorization": "Bearer tok-123"}
        )
        health = await http.get("/healthz")
    assert anonymous.status_code == wrong.status_code == 401
    assert "tok-123" not in anonymous.text + wrong.text
    assert right.status_code == 200
    assert health.status_code == 200


async def test_http_refuses_a_foreign_origin_and_host(http_url: str) -> None:
    auth = {**ACCEPT, "authorization": "Bearer tok-123"}
    async with httpx2.AsyncClient(base_url=http_url) as http:
        evil = await http.post(
            "/mcp", json=INITIALIZE, headers={**auth, "origin": "https://evil.example"}
        )
        rebound = await http.post(
            "/mcp", json=INITIALIZE, headers={**auth, "host": "attacker.example"}
        )
    assert evil.status_code == 403
    assert rebound.status_code == 421


async def test_the_sdk_client_over_http_with_the_token(local: Backend, http_url: str) -> None:
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"authorization": "Bearer tok-123"}) as http,
        Client(
            streamable_http_client(f"{http_url}/mcp", http_client=http), mode="legacy"
        ) as client,
    ):
        result = await client.call_tool("chat", {"user_prompt": "over http", "save": False})
    assert result.structured_content is not None
    assert result.structured_content["answer"] == "echo: over http"


def test_http_beyond_loopback_needs_a_token(local: Backend) -> None:
    settings = local.settings()
    with pytest.raises(SystemExit, match="APEX_HTTP_TOKEN"):
        create_http_app(build_server(settings), settings, "0.0.0.0", 8000)


# --- what a model sees ----------------------------------------------------------------------


async def test_tools_list_snapshot(local: Backend) -> None:
    """Any change to what a model sees must be a reviewed change: update the snapshots with
    UPDATE_SNAPSHOTS=1 and commit them with the change."""
    async with Client(build_server(local.settings()), mode="legacy") as client:
        tools = (await client.list_tools()).tools
    current = {
        tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools
    }
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        for stale in SNAPSHOTS.glob("*.json"):
            stale.unlink()
        for name, shown in current.items():
            text = json.dumps(shown, indent=2, ensure_ascii=False) + "\n"
            (SNAPSHOTS / f"{name}.json").write_text(text)
    snapshotted = {path.stem for path in SNAPSHOTS.glob("*.json")}
    assert set(current) == snapshotted, "tools added or removed: update the snapshots"
    for name, shown in current.items():
        assert shown == json.loads((SNAPSHOTS / f"{name}.json").read_text()), name


async def test_a_backend_that_cannot_start_is_explained_by_every_tool(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {"APEX_DB": str(blocker / "apex.db"), "APEX_DISCOVER_LOCAL_MINERS": "false"}
    async with connect("stdio", env) as client:
        tools = (await client.list_tools()).tools  # the host still gets its tools
        result = await client.call_tool("list_chats", {})
    assert len(tools) == 16
    assert result.is_error
    assert "could not start" in text_of(result) and "apex-mcp doctor" in text_of(result)
