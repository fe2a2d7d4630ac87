"""LocalApex's reads and writes beyond apex.v1: paged chats per user, a chat by id, and a chat
created with its first completion's metadata in one write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apex_mcp.apex import models as m
from apex_mcp.apex.client import PagesChats, RecordsChats
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.remote import RemoteApex
from apex_mcp.engine import LocalApex, MinerPool
from apex_mcp.engine.store import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def alice(tmp_path: Path) -> AsyncIterator[LocalApex]:
    async with SqliteStore(tmp_path / "apex.db") as store:
        yield LocalApex(store, MinerPool([]), user_id="alice")


async def create(engine: LocalApex, prompt: str, chat_type: str = "apex") -> str:
    created = await engine.create_chat_and_completion(
        m.CreateChatAndCompletionRequest(user_prompt=prompt, chat_type=chat_type)
    )
    assert created.parsed_chat is not None
    return created.parsed_chat.id


def test_paging_and_recording_are_capabilities_of_the_engine_only(tmp_path: Path) -> None:
    local = LocalApex(SqliteStore(tmp_path / "a.db"), MinerPool([]), user_id="u")
    remote = RemoteApex("https://apex.example", "key")
    assert isinstance(local, PagesChats) and isinstance(local, RecordsChats)
    assert not isinstance(remote, PagesChats) and not isinstance(remote, RecordsChats)


async def test_each_user_pages_through_their_own_chats_only(alice: LocalApex) -> None:
    bob = alice.for_user("bob")
    hers = [await create(alice, f"alice {i} tea") for i in range(3)]
    his = await create(bob, "bob tea")
    first = await alice.list_chats_page(limit=2)
    rest = await alice.list_chats_page(cursor=first.next_cursor, limit=2)
    found = await bob.search_chats_page("tea")
    assert [c.id for c in first.chats + rest.chats] == list(reversed(hers))
    assert rest.next_cursor is None
    assert [c.id for c in found.chats] == [his]
    assert (await alice.get_chat(hers[0])).title == "alice 0 tea"
    with pytest.raises(ApexError) as not_his:
        await bob.get_chat(hers[0])
    assert not_his.value.code is Code.NOT_FOUND
    with pytest.raises(ApexError) as foreign:
        await bob.list_chats_page(cursor=first.next_cursor, limit=2)
    assert foreign.value.code is Code.INVALID_ARGUMENT


async def test_paged_reads_check_their_arguments_as_the_rpcs_do(alice: LocalApex) -> None:
    gravity = await create(alice, "a gravity chat", chat_type="gravity")
    await create(alice, "an apex chat")
    only = await alice.list_chats_page(chat_type="gravity")
    assert [c.id for c in only.chats] == [gravity]
    for bad in (
        alice.list_chats_page(chat_type="video"),
        alice.list_chats_page(limit=0),
        alice.search_chats_page("x" * 1001),
        alice.get_chat("not-a-uuid"),
    ):
        with pytest.raises(ApexError) as refused:
            await bad
        assert refused.value.code is Code.INVALID_ARGUMENT


async def test_a_chat_is_created_with_its_completions_metadata(alice: LocalApex) -> None:
    entry = m.ResearchEntry("job-1", "pending", "2026-01-01T00:00:00Z").to_metadata()
    created = await alice.create_chat_with_metadata(
        m.CreateChatAndCompletionRequest(
            user_prompt="research this", completion_type="chain-of-thought"
        ),
        entry,
    )
    assert created.parsed_chat is not None and created.parsed_completion is not None
    stored = await alice.get_stored_chat_completions(
        m.GetStoredChatCompletionsRequest(chat_id=created.parsed_chat.id)
    )
    assert [c.metadata for c in stored.chat_completions] == [entry]
    assert created.parsed_completion.metadata == entry
    listed = await alice.get_completions_with_deep_researcher_entry(m.Empty())
    assert [c.id for c in listed.completions] == [created.parsed_completion.id]
