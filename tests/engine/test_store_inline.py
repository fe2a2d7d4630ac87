"""Small reads and writes of SqliteStore run on the event loop's own thread (no hop to a
worker thread); the rest, and any that would wait for a lock, run in a worker thread, with the
same answers. Small writes leave the loop while they are slow, and let SQLite checkpoint."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
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


# --- small writes ---


def where_written(conn: sqlite3.Connection) -> int:
    conn.execute(
        "INSERT INTO replies (user_id, key, method, request_digest, created_at)"
        " VALUES ('w', hex(randomblob(8)), 'm', 'd', '2026-01-01T00:00:00Z')"
    )
    return threading.get_ident()


async def test_a_small_write_runs_on_the_event_loops_thread(store: SqliteStore) -> None:
    assert await store._write(where_written, small=True) == threading.get_ident()
    assert await store._write(where_written) != threading.get_ident()  # not small: the thread
    long = "x" * (sqlite_store.INLINE_WRITE_CHARS + 1)  # too long for the loop: the thread
    _, completion = await store.create_chat(
        ALICE, user_prompt=long, chat_type="apex", completion_type="basic"
    )
    assert (await store.get_completion(ALICE, completion.id)).user_prompt_text == long


async def test_a_write_too_long_for_the_event_loop_is_rolled_back_and_done_in_the_thread(
    store: SqliteStore,
) -> None:
    count = sqlite_store.INLINE_STEPS * 2  # rows: far more steps than the loop's share
    tried: list[int] = []

    def long_write(conn: sqlite3.Connection) -> int:
        tried.append(threading.get_ident())
        conn.execute(
            "INSERT INTO replies (user_id, key, method, request_digest, created_at)"
            " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " SELECT 'w', 'k' || i, 'm', 'd', '2026-01-01T00:00:00Z' FROM n",
            (count,),
        )
        return threading.get_ident()

    loop_thread = threading.get_ident()
    thread = await store._write(long_write, small=True)
    assert tried == [loop_thread, thread] and thread != loop_thread  # inline first, then not
    rows = await store._read(lambda conn: conn.execute("SELECT count(*) FROM replies").fetchone())
    assert rows[0] == count  # once: the interrupted try left nothing
    assert await store._write(where_written, small=True) == loop_thread  # the next is inline


async def test_a_chat_with_many_completions_is_deleted_whole(store: SqliteStore) -> None:
    chat, _ = await store.create_chat(
        ALICE, user_prompt="first", chat_type="apex", completion_type="basic"
    )
    for n in range(100):  # its delete cascades further than the loop's share
        await store.create_completion(
            ALICE, chat.id, user_prompt=f"turn {n}", completion_type="basic"
        )
    assert await store.delete_chats(ALICE, [chat.id]) == 1
    assert await store.search_chat_ids(ALICE, "turn") == []
    assert await store.integrity_check() == "ok"


async def test_a_small_write_that_meets_another_writers_lock_waits_for_it_in_the_thread(
    store: SqliteStore,
) -> None:
    # Another connection holds the write lock, as another process would.
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO replies (user_id, key, method, request_digest, created_at)"
        " VALUES ('other', 'k', 'm', 'd', '2026-01-01T00:00:00Z')"
    )
    loop_thread = threading.get_ident()
    ticks = 0

    async def ticking() -> None:  # the loop goes on while the write waits
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticking)
        await anyio.sleep(0.05)
        release = threading.Timer(0.3, other.execute, ("COMMIT",))
        release.start()
        ticks_before = ticks
        chat, _ = await store.create_chat(
            ALICE, user_prompt="after the lock", chat_type="apex", completion_type="basic"
        )
        assert ticks > ticks_before  # the loop was not held while the lock was
        tg.cancel_scope.cancel()
    release.join()
    other.close()
    assert (await store.get_chat(ALICE, chat.id)).title == "after the lock"
    # The wait (0.3 s) is not taken for a slow disk: the next small writes are soon inline
    # again (had it counted, the running average would keep some 30 of them off the loop).
    later = [await store._write(where_written, small=True) for _ in range(10)]
    assert loop_thread in later


class Clock:
    """The store's ``time`` for its write timings: each write measures ``lap`` seconds, as on
    a disk that fast, whatever this busy machine does meanwhile."""

    def __init__(self) -> None:
        self.now, self.lap = 0.0, 0.0

    def perf_counter(self) -> float:
        self.now += self.lap / 2  # a write reads it twice: when it starts and when it ends
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


async def test_small_writes_move_to_the_thread_while_they_are_slow_and_come_back(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(sqlite_store, "time", clock)
    loop_thread = threading.get_ident()
    clock.lap = sqlite_store.INLINE_WRITE_SECONDS * 3  # as fsyncs on a slow disk
    threads = [await store._write(where_written, small=True) for _ in range(40)]
    assert threads[0] == loop_thread
    assert threads[-1] != loop_thread  # slow on average: the loop is not held any more
    clock.lap = sqlite_store.INLINE_WRITE_SECONDS / 10
    threads = [await store._write(where_written, small=True) for _ in range(100)]
    assert threads[0] != loop_thread
    assert threads[-1] == loop_thread  # fast again: back on the loop


async def test_inline_writes_leave_the_wal_checkpointed_now_and_then(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 10)
    wal = Path(f"{store.path}-wal")
    prompt = "many words " * 700  # about 7,700 characters: a small write, several pages
    sizes = []
    for n in range(400):
        await store.create_chat(
            ALICE, user_prompt=f"{n} {prompt}", chat_type="apex", completion_type="basic"
        )
        sizes.append(wal.stat().st_size)
    pages = max(sizes) // 4096
    # SQLite checkpoints once the WAL holds 1,000 pages; without that it would hold them all.
    assert pages < 2_000, f"the WAL grew to {pages} pages"
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM chats").fetchone() == (400,)
