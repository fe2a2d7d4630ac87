"""Small reads of SqliteStore run on the event loop's own thread (no hop to a worker thread);
the rest, and any that would wait for a lock, run in a worker thread, with the same answers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apex_mcp.apex.errors import Code
from apex_mcp.engine.store import SqliteStore
from apex_mcp.engine.store import sqlite as sqlite_store

pytestmark = pytest.mark.anyio

ALICE = "alice"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "apex.db") as opened:
        yield opened


def where(conn: sqlite3.Connection) -> int:
    conn.execute("SELECT 1").fetchone()
    return threading.get_ident()


async def test_a_small_read_runs_on_the_event_loops_thread(store: SqliteStore) -> None:
    assert await store._read(where, inline=True) == threading.get_ident()
    assert await store._read(where) != threading.get_ident()  # not asked: a worker thread


async def test_a_read_too_long_for_the_event_loop_moves_to_a_worker_thread(
    store: SqliteStore,
) -> None:
    count = sqlite_store.INLINE_STEPS * 10  # far more steps than the loop's share

    def long_read(conn: sqlite3.Connection) -> tuple[int, int]:
        total = conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " SELECT count(*) FROM n",
            (count,),
        ).fetchone()[0]
        return total, threading.get_ident()

    total, thread = await store._read(long_read, inline=True)
    assert total == count  # the whole answer, not the interrupted one
    assert thread != threading.get_ident()
    assert await store._read(where, inline=True) == threading.get_ident()  # the next is inline


async def test_many_chats_are_all_listed_though_too_many_for_the_event_loop(
    store: SqliteStore,
) -> None:
    many = sqlite_store.INLINE_STEPS // 5  # about twice what fits in the loop's share
    for n in range(many):
        await store.create_chat(
            ALICE, user_prompt=f"p{n}", chat_type="apex", completion_type="basic", title=f"t{n}"
        )
    chats = await store.list_chats(ALICE)
    assert [c.title for c in chats] == [f"t{n}" for n in reversed(range(many))]
    page = await store.list_chats_page(ALICE, limit=3)
    assert [c.title for c in page.chats] == [f"t{n}" for n in (many - 1, many - 2, many - 3)]


async def test_a_missing_chat_read_inline_is_not_found(store: SqliteStore) -> None:
    with pytest.raises(sqlite_store.ApexError) as caught:
        await store.get_chat(ALICE, "00000000-0000-4000-8000-000000000000")
    assert caught.value.code == Code.NOT_FOUND


async def test_a_read_that_meets_a_lock_on_the_event_loop_waits_for_it_in_a_thread(
    store: SqliteStore,
) -> None:
    loop_thread = threading.get_ident()

    def locked_on_the_loop(conn: sqlite3.Connection) -> int:
        if threading.get_ident() == loop_thread:  # as SQLite says it when another holds a lock
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise busy
        return where(conn)

    assert await store._read(locked_on_the_loop, inline=True) != loop_thread
    assert await store._read(where, inline=True) == loop_thread  # no transaction left open
