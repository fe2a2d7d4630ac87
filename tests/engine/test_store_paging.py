"""Paged listings of the store (both stores): keyset pages, signed cursors, the full-text
index driving search."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.engine.store import ChatPage, SqliteStore, Store
from apex_mcp.engine.store.sqlite import LIST_PAGE_SQL, SEARCH_STREAM_SQL, fts_query
from tests.engine.conftest import sqlite_only

pytestmark = pytest.mark.anyio

ALICE, BOB = "alice", "bob"
Pager = Callable[[str | None], Awaitable[ChatPage]]


async def new_chat(
    store: Store, prompt: str = "hello", *, user: str = ALICE, chat_type: str = "apex"
) -> str:
    chat, _ = await store.create_chat(
        user, user_prompt=prompt, chat_type=chat_type, completion_type="basic"
    )
    return chat.id


async def all_pages(pager: Pager) -> list[list[str]]:
    """The ids on each page, following next_cursor to the end."""
    pages, cursor = [], None
    while True:
        page = await pager(cursor)
        pages.append([chat.id for chat in page.chats])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def flat(pages: list[list[str]]) -> list[str]:
    return [chat_id for page in pages for chat_id in page]


async def plan_of(store: Store, sql: str, params: tuple[object, ...]) -> list[str]:
    """The details of SQLite's plan for ``sql``, on the store's own connection."""
    rows = await store._read(
        lambda conn: conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    )
    return [str(row["detail"]) for row in rows]


async def refused(call: Awaitable[object]) -> str:
    with pytest.raises(ApexError) as caught:
        await call
    assert caught.value.code == Code.INVALID_ARGUMENT, caught.value
    return str(caught.value)


# --- list_chats_page --------------------------------------------------------------------------


async def test_pages_of_chats_follow_list_chats_order_and_end(store: Store) -> None:
    for n in range(7):
        await new_chat(store, f"prompt {n}", chat_type="apex" if n % 3 else "research")

    pages = await all_pages(lambda cursor: store.list_chats_page(ALICE, cursor=cursor, limit=3))

    assert [len(page) for page in pages] == [3, 3, 1]
    assert flat(pages) == [chat.id for chat in await store.list_chats(ALICE)]
    research = await store.list_chats_page(ALICE, chat_type="research", limit=10)
    assert [chat.id for chat in research.chats] == [
        chat.id for chat in await store.list_chats(ALICE, "research")
    ]
    assert {chat.chat_type for chat in research.chats} == {"research"}
    assert research.next_cursor is None


async def test_a_page_that_fills_exactly_has_no_next_page_after_it(store: Store) -> None:
    for _ in range(4):
        await new_chat(store)
    first = await store.list_chats_page(ALICE, limit=2)
    second = await store.list_chats_page(ALICE, cursor=first.next_cursor, limit=2)
    assert len(second.chats) == 2 and second.next_cursor is None
    assert (await store.list_chats_page(BOB)).chats == []


async def test_paging_gives_every_chat_once_while_chats_are_added_and_updated(
    store: Store,
) -> None:
    existing = [await new_chat(store, f"chat {n}") for n in range(12)]
    seen: list[str] = []
    page = await store.list_chats_page(ALICE, limit=4)
    while True:
        seen += [chat.id for chat in page.chats]
        # Between pages: the chats not yet seen are renamed and get new completions (both
        # bump updated_at), and new chats arrive.
        for chat_id in existing:
            if chat_id not in seen:
                await store.update_chat(ALICE, chat_id, title=f"renamed {chat_id[:4]}")
                await store.create_completion(
                    ALICE, chat_id, user_prompt="more", completion_type="basic"
                )
                break
        await new_chat(store, "arrived while paging")
        if page.next_cursor is None:
            break
        page = await store.list_chats_page(ALICE, cursor=page.next_cursor, limit=4)

    assert len(seen) == len(set(seen))  # none twice
    assert set(existing) <= set(seen)  # none missed


async def test_chats_created_at_the_same_instant_are_paged_by_their_order_of_creation(
    store: Store, backend: Any
) -> None:
    ids = [await new_chat(store) for _ in range(7)]
    backend.query("UPDATE chats SET created_at = '2026-01-01T00:00:00.000000Z'")

    pages = await all_pages(lambda cursor: store.list_chats_page(ALICE, cursor=cursor, limit=2))

    assert flat(pages) == ids[::-1]


async def test_a_cursor_still_pages_after_the_store_is_reopened(backend: Any) -> None:
    async with await backend.open() as store:
        ids = [await new_chat(store) for _ in range(3)]
        cursor = (await store.list_chats_page(ALICE, limit=2)).next_cursor
    async with await backend.open() as store:
        rest = await store.list_chats_page(ALICE, cursor=cursor, limit=2)
    assert [chat.id for chat in rest.chats] == [ids[0]]


# --- cursors that are refused -----------------------------------------------------------------


async def first_cursor(store: Store) -> str:
    for _ in range(3):
        await new_chat(store, "needle")
    cursor = (await store.list_chats_page(ALICE, limit=1)).next_cursor
    assert cursor is not None
    return cursor


async def test_another_users_cursor_is_refused_with_what_to_do(store: Store) -> None:
    cursor = await first_cursor(store)
    message = await refused(store.list_chats_page(BOB, cursor=cursor))
    assert "start again from the first page" in message


async def test_a_cursor_of_another_listing_is_refused(store: Store) -> None:
    cursor = await first_cursor(store)
    await refused(store.list_chats_page(ALICE, chat_type="apex", cursor=cursor))
    await refused(store.search_chats_page(ALICE, "needle", cursor=cursor))
    found = await store.search_chats_page(ALICE, "needle", limit=1)
    assert found.next_cursor is not None
    await refused(store.search_chats_page(ALICE, "needles", cursor=found.next_cursor))
    await refused(store.list_chats_page(ALICE, cursor=found.next_cursor))
    await refused(store.search_chats_page(ALICE, "!!!", cursor=found.next_cursor))


async def test_an_altered_or_made_up_cursor_is_refused(store: Store) -> None:
    cursor = await first_cursor(store)
    raw = base64.urlsafe_b64decode(cursor)
    body, mac = raw[:-16], raw[-16:]
    later = body.replace(b"Z ", b"Z 9")  # a forged seq: page from elsewhere
    assert later != body
    forged = [
        base64.urlsafe_b64encode(later + mac).decode(),
        base64.urlsafe_b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode(),
        base64.urlsafe_b64encode(body).decode(),  # no signature
        cursor[:-4],
        "",
        "not base64 at all!",
        "é",
        "\ud800",
    ]
    for bad in forged:
        await refused(store.list_chats_page(ALICE, cursor=bad))


async def test_a_cursor_from_another_database_is_refused(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "one.db") as one:
        cursor = await first_cursor(one)
    async with SqliteStore(tmp_path / "two.db") as two:
        await first_cursor(two)
        await refused(two.list_chats_page(ALICE, cursor=cursor))


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_a_page_size_out_of_bounds_is_invalid(store: Store, limit: int) -> None:
    message = await refused(store.list_chats_page(ALICE, limit=limit))
    assert "1 to 1000" in message
    await refused(store.search_chats_page(ALICE, "x", limit=limit))


# --- search_chats_page ------------------------------------------------------------------------


async def test_search_pages_find_what_search_chat_ids_finds_with_titles(
    store: Store,
) -> None:
    for n in range(9):
        await new_chat(store, f"the quick brown fox number {n}" if n % 2 else f"nothing {n}")
    await new_chat(store, "the quick fox of bob", user=BOB)

    pages = await all_pages(
        lambda cursor: store.search_chats_page(ALICE, "quick fo", cursor=cursor, limit=2)
    )

    found = flat(pages)
    assert sorted(found) == sorted(await store.search_chat_ids(ALICE, "quick fo"))
    assert len(found) == 4 and [len(page) for page in pages] == [2, 2]
    # One completion each: the newest match first is the newest chat first.
    assert found == [chat.id for chat in await store.list_chats(ALICE) if chat.id in found]
    page = await store.search_chats_page(ALICE, "quick", limit=1)
    assert page.chats[0].title.startswith("the quick brown fox number")
    assert (await store.search_chats_page(ALICE, "absentword")).chats == []
    assert (await store.search_chats_page(ALICE, "  ...  ")).chats == []


async def test_search_paging_gives_every_match_once_while_chats_change(
    store: Store,
) -> None:
    matching = [await new_chat(store, f"needle {n}") for n in range(9)]
    for n in range(5):
        await new_chat(store, f"hay {n}")
    seen: list[str] = []
    page = await store.search_chats_page(ALICE, "needle", limit=3)
    while True:
        seen += [chat.id for chat in page.chats]
        for chat_id in matching:
            if chat_id not in seen:  # a later match gets a new completion: updated_at moves
                await store.create_completion(
                    ALICE, chat_id, user_prompt="needle again", completion_type="basic"
                )
                break
        await new_chat(store, "needle arrived late")
        if page.next_cursor is None:
            break
        page = await store.search_chats_page(ALICE, "needle", cursor=page.next_cursor, limit=3)

    assert len(seen) == len(set(seen))
    assert set(matching) <= set(seen)


async def test_a_chat_matching_in_several_completions_comes_once_at_its_newest_match(
    store: Store,
) -> None:
    old = await new_chat(store, "needle in the first chat")
    middle = await new_chat(store, "needle in the second chat")
    for _ in range(3):  # the first chat matches again, newer than the second
        await store.create_completion(ALICE, old, user_prompt="needle", completion_type="basic")
    newest = await new_chat(store, "needle in the third chat")
    await new_chat(store, "hay")

    for limit in (1, 2, 5):

        def pager(cursor: str | None, limit: int = limit) -> Awaitable[ChatPage]:
            return store.search_chats_page(ALICE, "needle", cursor=cursor, limit=limit)

        pages = await all_pages(pager)
        assert flat(pages) == [newest, old, middle], limit


async def test_search_paging_ignores_what_is_written_after_the_first_page(
    store: Store,
) -> None:
    chats = [await new_chat(store, f"needle {n}") for n in range(6)]
    first = await store.search_chats_page(ALICE, "needle", limit=2)
    assert [chat.id for chat in first.chats] == chats[:-3:-1]
    for chat_id in chats:  # every chat gets a newer matching completion, and one arrives
        await store.create_completion(ALICE, chat_id, user_prompt="needle", completion_type="basic")
    await new_chat(store, "needle, late")

    rest = await all_pages(
        lambda cursor: store.search_chats_page(
            ALICE, "needle", cursor=cursor or first.next_cursor, limit=2
        )
    )
    assert flat(rest) == chats[-3::-1]  # the rest of the first listing, as it was
    anew = await store.search_chats_page(ALICE, "needle", limit=10)
    assert [chat.id for chat in anew.chats][1:] == chats[::-1]  # a new one: the late first


@sqlite_only
async def test_the_full_text_index_drives_the_search_page(store: Store) -> None:
    await new_chat(store, "needle")
    params = (fts_query("needle"), 1000, ALICE)

    details = await plan_of(store, SEARCH_STREAM_SQL, params)

    # The index first, in its own rowid order (no sort: a page stops early), then each
    # match's completion by its key; never a scan of the user's chats or completions.
    assert details[0].startswith("SCAN completions_fts VIRTUAL TABLE INDEX"), details
    assert details[1:] == ["SEARCH completions USING INTEGER PRIMARY KEY (rowid=?)"], details


@sqlite_only
async def test_a_page_of_chats_is_read_from_an_index_without_sorting(store: Store) -> None:
    await new_chat(store)
    for extra, params in (
        ("", (ALICE,)),
        (" AND chat_type = ?", (ALICE, "apex")),
    ):
        sql = LIST_PAGE_SQL + extra + " AND (chats.created_at, chats.seq) < (?, ?)"
        sql += " ORDER BY chats.created_at DESC, chats.seq DESC LIMIT ?"
        args = (*params, "2030-01-01T00:00:00.000000Z", 5, 21)
        details = await plan_of(store, sql, args)
        assert len(details) == 1 and details[0].startswith("SEARCH chats USING INDEX"), details
        assert "TEMP B-TREE" not in details[0]


# --- a chat with its first completion, written whole --------------------------------------------


async def test_create_chat_can_store_the_first_completions_text_and_metadata(
    store: Store,
) -> None:
    chat, completion = await store.create_chat(
        ALICE,
        user_prompt="question",
        chat_type="apex",
        completion_type="basic",
        completion_text="answer",
        metadata={"deep-researcher": {"jobId": "j1"}},
    )
    stored = await store.get_completion(ALICE, completion.id)
    assert (stored.completion_text, stored.metadata) == (
        "answer",
        {"deep-researcher": {"jobId": "j1"}},
    )
    assert stored.completed_at is not None and stored.chat_id == chat.id
    assert completion.metadata == stored.metadata
    assert [c.id for c in await store.list_deep_research_completions(ALICE)] == [completion.id]
    assert await store.search_chat_ids(ALICE, "answer") == [chat.id]


async def test_a_chat_whose_first_completion_is_invalid_is_not_created(store: Store) -> None:
    with pytest.raises(ApexError):
        await store.create_chat(
            ALICE,
            user_prompt="question",
            chat_type="apex",
            completion_type="basic",
            metadata={"bad": float("nan")},
        )
    assert await store.list_chats(ALICE) == []


async def test_timestamps_come_back_as_aware_utc(store: Store) -> None:
    chat_id = await new_chat(store)
    chat = await store.get_chat(ALICE, chat_id)
    offset = None if chat.created_at is None else chat.created_at.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
