"""A user's session, end to end: the SDK's client over stdio and over streamable HTTP, against
the embedded engine and against a gateway, with a fake OpenAI-compatible server answering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError
from mcp_types import PromptReference, ResourceTemplateReference

from tests.server.harness import Backend, backend, connect, text_of

pytestmark = pytest.mark.anyio

ALL_TOOLS = {
    "chat",
    "web_search",
    "deep_research_start",
    "deep_research_status",
    "list_research",
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


@pytest.fixture(params=["local", "remote"])
def apex(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with backend(request.param, tmp_path) as b:
        yield b


@pytest.mark.parametrize(
    "transport,mode",
    [("stdio", "legacy"), ("http", "legacy"), ("stdio", "2026-07-28")],
    ids=["stdio", "http", "stdio-2026"],
)
async def test_a_session_with_every_tool_resource_and_prompt(
    transport: str, mode: str, apex: Backend
) -> None:
    """Hosts speak the handshake protocol (2025-11-25); the SDK's own client may speak the
    stateless 2026-07-28 one: both are served."""
    async with connect(transport, apex.env, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        expected = ALL_TOOLS | ({"deep_research_cancel"} if apex.name == "local" else set())
        assert set(tools) == expected
        assert all(t.output_schema for t in tools.values())

        # Chat, saved, with progress as the answer streams in.
        progress: list[tuple[float, Any, Any]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        first = await client.call_tool(
            "chat", {"user_prompt": "hello apex", "seed": 3}, progress_callback=on_progress
        )
        assert not first.is_error, text_of(first)
        answer = first.structured_content
        assert answer is not None
        assert answer["answer"] == "echo: hello apex"
        assert answer["model"] == "m1" and answer["finish_reason"] == "stop"
        assert progress and progress[-1][0] == len("echo: hello apex")
        chat_id = answer["chat_id"]
        assert "echo: hello apex" in text_of(first)

        # Continuing the chat sends its history.
        second = await client.call_tool("chat", {"user_prompt": "and again", "chat_id": chat_id})
        assert second.structured_content is not None
        assert second.structured_content["chat_id"] == chat_id
        sent = apex.fake.requests[-1]["messages"]
        assert [m["content"] for m in sent] == ["hello apex", "echo: hello apex", "and again"]

        # Stored chats.
        listed = (await client.call_tool("list_chats", {})).structured_content
        assert listed is not None and [c["id"] for c in listed["chats"]] == [chat_id]
        got = (await client.call_tool("get_chat", {"chat_id": chat_id})).structured_content
        assert got is not None
        assert [c["completion_text"] for c in got["completions"]] == [
            "echo: hello apex",
            "echo: and again",
        ]
        found = (
            await client.call_tool("search_chats", {"search_term": "again"})
        ).structured_content
        assert found is not None and [c["id"] for c in found["chats"]] == [chat_id]
        renamed = await client.call_tool("update_chat", {"chat_id": chat_id, "title": "Greetings"})
        assert renamed.structured_content is not None
        assert renamed.structured_content["title"] == "Greetings"

        added = await client.call_tool(
            "create_completion", {"chat_id": chat_id, "user_prompt": "a third question"}
        )
        assert added.structured_content is not None
        completion_id = added.structured_content["id"]
        edited = await client.call_tool(
            "update_completion",
            {
                "completion_id": completion_id,
                "completion_text": "a written answer",
                "metadata": {"k": 1},
            },
        )
        assert edited.structured_content is not None
        assert edited.structured_content["metadata"] == {"k": 1}
        one = await client.call_tool("get_completion", {"completion_id": completion_id})
        assert one.structured_content is not None
        assert one.structured_content["completion_text"] == "a written answer"

        created = await client.call_tool(
            "create_chat", {"user_prompt": "another chat", "chat_type": "gravity"}
        )
        assert created.structured_content is not None
        other_id = created.structured_content["chat"]["id"]

        # Resources.
        index = await client.read_resource("apex://chats")
        assert "Greetings" in index.contents[0].text and chat_id in index.contents[0].text  # type: ignore[union-attr]
        chat_doc = (await client.read_resource(f"apex://chats/{chat_id}")).contents[0]
        assert chat_doc.mime_type == "text/markdown"
        assert "# Greetings" in chat_doc.text and "a written answer" in chat_doc.text  # type: ignore[union-attr]
        completion_doc = (
            await client.read_resource(f"apex://completions/{completion_id}")
        ).contents[0]
        assert "a third question" in completion_doc.text  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await client.read_resource("apex://chats/00000000-0000-4000-8000-000000000000")
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        assert templates == {
            "apex://chats/{chat_id}",
            "apex://completions/{completion_id}",
            "apex://research/{job_id}",
        }

        # Argument completion for chat ids.
        completion = await client.complete(
            ResourceTemplateReference(uri="apex://chats/{chat_id}"),
            {"name": "chat_id", "value": chat_id[:4]},
        )
        assert chat_id in completion.completion.values
        completion = await client.complete(
            PromptReference(name="continue_chat"), {"name": "chat_id", "value": ""}
        )
        assert set(completion.completion.values) == {chat_id, other_id}

        # Prompts.
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert prompts == {"deep_research", "continue_chat"}
        resumed = await client.get_prompt("continue_chat", {"chat_id": chat_id})
        assert "echo: hello apex" in resumed.messages[0].content.text  # type: ignore[union-attr]
        research = await client.get_prompt("deep_research", {"topic": "solar sails"})
        text = research.messages[0].content.text  # type: ignore[union-attr]
        assert "solar sails" in text and "deep_research_status" in text

        # Deleting.
        gone = await client.call_tool("delete_completions", {"completion_ids": [completion_id]})
        assert gone.structured_content == {"success": True, "deleted": [completion_id]}
        gone = await client.call_tool("delete_chats", {"chat_ids": [chat_id, other_id]})
        assert gone.structured_content is not None and gone.structured_content["success"]
        listed = (await client.call_tool("list_chats", {})).structured_content
        assert listed == {"chats": []}
        missing = await client.call_tool("get_chat", {"chat_id": chat_id})
        assert missing.is_error and "not_found" in text_of(missing)
