"""What only the PostgreSQL store has to show: replicas that start and write at once, its
migrations, its full-text index, and a URL whose password never shows.

The rest of its behaviour is tested with the SQLite store's, by the same tests
(test_store.py, test_store_paging.py).
"""

from __future__ import annotations

import random
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from apex_mcp._dburl import redacted_url
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.engine.store import Store, open_store
from apex_mcp.engine.store import postgres as pg
from apex_mcp.engine.store.postgres import PostgresStore, tsquery

pytestmark = pytest.mark.anyio
# The store and backend fixtures (tests/engine/conftest.py), of PostgreSQL only.
postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

ALICE, BOB = "alice", "bob"


@pytest.fixture
def fresh_schema(backend: Any) -> Iterator[str]:
    """The URL of an empty schema of the test database: a database no replica has opened."""
    schema = f"fresh_{secrets.token_hex(4)}"
    backend.query(f"CREATE SCHEMA {schema}")
    yield schema
    backend.query(f"DROP SCHEMA {schema} CASCADE")


async def raises(code: Code, call: Any) -> ApexError:
    with pytest.raises(ApexError) as caught:
        await call
    assert caught.value.code == code, caught.value
    return caught.value


# --- replicas starting at once, migrations ---------------------------------------------------


@postgres_only
async def test_replicas_starting_at_once_on_a_new_database_all_open_it(
    backend: Any, fresh_schema: str
) -> None:
    url = backend.database.schema_url(fresh_schema)
    stores: list[Store] = []

    async def start() -> None:
        stores.append(await open_store(url))

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(start)
        assert len(stores) == 6
        chat, _ = await stores[0].create_chat(
            ALICE, user_prompt="one schema", chat_type="apex", completion_type="basic"
        )
        for store in stores:
            assert [c.id for c in await store.list_chats(ALICE)] == [chat.id]
    finally:
        for store in stores:
            await store.close()
    assert backend.query(f"SELECT version FROM {fresh_schema}.apex_schema") == [
        (len(pg.MIGRATIONS),)
    ]
    keys = backend.query(f"SELECT count(*) FROM {fresh_schema}.secrets")
    assert keys == [(1,)]  # one cursor key: the replicas' cursors hold in each other


@postgres_only
async def test_a_new_migration_is_applied_once(
    backend: Any, fresh_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = backend.database.schema_url(fresh_schema)
    async with await open_store(url) as store:
        chat, _ = await store.create_chat(
            ALICE, user_prompt="kept", chat_type="apex", completion_type="basic"
        )
    migrations = [*pg.MIGRATIONS, "CREATE TABLE extra (x text);"]
    monkeypatch.setattr(pg, "MIGRATIONS", migrations)
    for _ in range(2):  # a second open would fail on "relation extra already exists"
        async with await open_store(url) as store:
            assert [c.id for c in await store.list_chats(ALICE)] == [chat.id]
        version = backend.query(f"SELECT version FROM {fresh_schema}.apex_schema")
        assert version == [(len(migrations),)]


@postgres_only
async def test_a_failing_migration_changes_nothing(
    backend: Any, fresh_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = backend.database.schema_url(fresh_schema)
    async with await open_store(url):
        pass
    broken = "CREATE TABLE half_done (x text);\nTHIS IS NOT SQL;"
    monkeypatch.setattr(pg, "MIGRATIONS", [*pg.MIGRATIONS, broken])
    await raises(Code.INTERNAL, open_store(url))
    version = backend.query(f"SELECT version FROM {fresh_schema}.apex_schema")
    assert version == [(len(pg.MIGRATIONS) - 1,)]
    tables = backend.query(f"SELECT tablename FROM pg_tables WHERE schemaname = '{fresh_schema}'")
    assert ("half_done",) not in tables and ("chats",) in tables


@postgres_only
async def test_a_database_from_a_newer_version_is_refused(backend: Any, fresh_schema: str) -> None:
    url = backend.database.schema_url(fresh_schema)
    async with await open_store(url):
        pass
    backend.query(f"UPDATE {fresh_schema}.apex_schema SET version = version + 1")
    error = await raises(Code.FAILED_PRECONDITION, open_store(url))
    assert "newer" in error.message


@postgres_only
async def test_a_cursor_from_another_database_is_refused(
    store: PostgresStore, backend: Any, fresh_schema: str
) -> None:
    for _ in range(3):
        await new_chat(store, ALICE, "needle")
    cursor = (await store.list_chats_page(ALICE, limit=1)).next_cursor
    assert cursor is not None
    async with await open_store(backend.database.schema_url(fresh_schema)) as other:
        for _ in range(3):
            await new_chat(other, ALICE, "needle")
        with pytest.raises(ApexError) as refused:
            await other.list_chats_page(ALICE, cursor=cursor)
    assert refused.value.code == Code.INVALID_ARGUMENT


# --- many writers in three replicas ----------------------------------------------------------


@postgres_only
async def test_three_replicas_writing_at_once_keep_every_acknowledged_write(
    backend: Any,
) -> None:
    """Creates, updates and deletes from many clients of three replicas (three pools), on
    shared rows too: every write acknowledged is there, and no client sees an error."""
    replicas = [await backend.open() for _ in range(3)]
    users = [ALICE, BOB, "carol"]
    try:
        first = replicas[0]
        job = await first.create_job(ALICE, request={})
        # A chat per user that every client writes in: rows they all contend for.
        hot_chats = {user: await new_chat(first, user, "hot") for user in users}
        hot = {user: chat_id for user, (chat_id, _) in hot_chats.items()}
        titles: dict[str, str] = {}  # the surviving chats: their last acknowledged title
        answers: dict[tuple[str, str, str], str] = {}  # (user, chat, completion): its text
        deleted: list[str] = []
        hot_added: dict[str, set[str]] = {user: set() for user in users}
        hot_deleted: set[str] = set()
        chunks: dict[int, str] = {}

        async def client(n: int) -> None:
            store, user = replicas[n % 3], users[n % len(users)]
            mine: list[str] = []
            for r in range(6):
                chat_id, completion_id = await new_chat(store, user, f"client {n} round {r}")
                titles[chat_id] = f"client {n} round {r}"
                mine.append(chat_id)
                await store.update_completion(user, completion_id, completion_text=f"a{n}.{r}")
                answers[user, chat_id, completion_id] = f"a{n}.{r}"
                renamed = await store.update_chat(user, chat_id, title=f"renamed {n}.{r}")
                titles[chat_id] = renamed.title
                added = await store.create_completion(
                    user, hot[user], user_prompt=f"{n}.{r}", completion_type="basic"
                )
                hot_added[user].add(added.id)
                await store.update_chat(user, hot[user], title=f"hot {n}.{r}")
                others = sorted(hot_added[user] - hot_deleted)
                victims = random.sample(others, min(2, len(others)))
                await store.delete_completions(user, victims)
                hot_deleted.update(victims)
                chunks[await store.append_chunk(job.id, f"{n}.{r}")] = f"{n}.{r}"
                if r % 2:
                    gone = mine.pop(0)
                    assert await store.delete_chats(user, [gone]) == 1
                    deleted.append(gone)
                    del titles[gone]

        async with anyio.create_task_group() as tg:
            for n in range(24):
                tg.start_soon(client, n)

        check = replicas[2]
        listed = {c.id: c.title for user in users for c in await check.list_chats(user)}
        assert {k: v for k, v in listed.items() if k not in hot.values()} == titles
        assert not set(deleted) & set(listed)
        for (user, chat_id, completion_id), text in answers.items():
            if chat_id in titles:
                stored = await check.get_completion(user, completion_id)
                assert stored.completion_text == text
            else:  # gone with its chat
                await raises(Code.NOT_FOUND, check.get_completion(user, completion_id))
        for user, (chat_id, first_completion) in hot_chats.items():
            on_hot = {c.id for c in await check.list_completions(user, chat_id)}
            assert on_hot == {first_completion} | (hot_added[user] - hot_deleted)
        stored_chunks = (await check.get_job(ALICE, job.id)).chunks
        assert {c.seq_id: c.chunk for c in stored_chunks} == chunks
        assert sorted(chunks) == list(range(1, len(chunks) + 1))
        assert await check.integrity_check() == "ok"
    finally:
        for replica in replicas:
            await replica.close()


async def new_chat(store: Store, user: str, prompt: str) -> tuple[str, str]:
    chat, completion = await store.create_chat(
        user, user_prompt=prompt, chat_type="apex", completion_type="basic", title=prompt
    )
    return chat.id, completion.id


@postgres_only
async def test_tries_of_one_key_at_once_in_three_replicas_claim_it_once(backend: Any) -> None:
    replicas = [await backend.open() for _ in range(3)]
    try:
        claims: list[object] = []

        async def claim(n: int) -> None:
            claims.append(await replicas[n % 3].claim_reply(ALICE, "k", "CreateChat", "d"))

        async with anyio.create_task_group() as tg:
            for n in range(30):
                tg.start_soon(claim, n)
        assert claims.count(None) == 1  # one claimed it; the others saw the claim
        assert all(c is None or c.reply is None for c in claims)  # type: ignore[attr-defined]
    finally:
        for replica in replicas:
            await replica.close()


@postgres_only
async def test_a_deadlock_is_retried_inside_the_store_not_told_to_the_caller(
    store: PostgresStore,
) -> None:
    one, _ = await new_chat(store, ALICE, "one")
    two, _ = await new_chat(store, ALICE, "two")
    locked = [anyio.Event(), anyio.Event()]
    tries = [0, 0]

    def locking(n: int, first: str, then: str) -> Any:
        async def work(conn: Any) -> None:
            tries[n] += 1
            await conn.execute("SET LOCAL deadlock_timeout = '20ms'")
            await conn.execute("UPDATE chats SET title = %s WHERE id = %s", (f"w{n}", first))
            if tries[n] == 1:  # the first try waits for the other's lock: a deadlock
                locked[n].set()
                await locked[1 - n].wait()
            await conn.execute("UPDATE chats SET title = %s WHERE id = %s", (f"w{n}", then))

        return work

    async with anyio.create_task_group() as tg:
        tg.start_soon(store._write, locking(0, one, two))
        tg.start_soon(store._write, locking(1, two, one))
    assert sorted(tries) == [1, 2]  # one of them lost the deadlock and was tried again
    # Both wrote both chats, one after the other: the chats have the title of the last.
    assert len({c.title for c in await store.list_chats(ALICE)}) == 1


@postgres_only
async def test_a_cancelled_caller_waits_for_its_transaction_and_the_store_goes_on(
    store: PostgresStore,
) -> None:
    chat_id, _ = await new_chat(store, ALICE, "before")

    async def slow_rename(conn: Any) -> None:
        await conn.execute("SELECT pg_sleep(0.3)")
        await conn.execute("UPDATE chats SET title = 'renamed' WHERE id = %s", (chat_id,))

    with anyio.move_on_after(0.05) as scope:
        await store._write(slow_rename)
    assert scope.cancel_called  # cancelled during the transaction, which still ended whole
    assert (await store.get_chat(ALICE, chat_id)).title == "renamed"
    for _ in range(pg.POOL_SIZE + 1):  # every connection of the pool still works
        await new_chat(store, ALICE, "after")


# --- full-text search -----------------------------------------------------------------------


@postgres_only
async def test_the_search_page_reads_the_full_text_index(
    store: PostgresStore, backend: Any
) -> None:
    # Many chats of the user, few of them matching: the plan starts from the GIN index.
    await new_chat(store, ALICE, "needle")
    at = "2026-01-01T00:00:00.000000Z"
    backend.query(
        "INSERT INTO chats (id, user_id, title, chat_type, created_at, updated_at)"
        f" SELECT 'c' || n, 'alice', 't', 'apex', '{at}', '{at}'"
        " FROM generate_series(1, 5000) AS n;"
        " INSERT INTO completions (id, chat_id, user_id, completion_type, user_prompt_text,"
        " created_at, prompt_words) SELECT 'm' || n, 'c' || n, 'alice', 'basic', 'hay',"
        f" '{at}', CASE WHEN n % 500 = 0 THEN 'needle:1' ELSE 'hay:1' END::tsvector"
        " FROM generate_series(1, 5000) AS n;"
        " ANALYZE chats; ANALYZE completions"
    )
    params = (tsquery("needle"), ALICE, 10_000, 10_001, 21, ALICE)
    plan = backend.database.query("EXPLAIN " + pg.SEARCH_PAGE_SQL, params)
    text = "\n".join(row[0] for row in plan)
    assert "Bitmap Index Scan on completions_words" in text, text
    assert "Seq Scan on completions" not in text, text
    assert len((await store.search_chats_page(ALICE, "needle", limit=100)).chats) == 11


@postgres_only
async def test_integrity_check_notices_words_out_of_step_with_the_text(
    store: PostgresStore, backend: Any
) -> None:
    _, completion_id = await new_chat(store, ALICE, "indexed words")
    assert await store.integrity_check() == "ok"
    backend.query(f"UPDATE completions SET prompt_words = '' WHERE id = '{completion_id}'")
    assert "full-text index" in await store.integrity_check()


def test_the_query_is_plain_words_the_last_a_prefix() -> None:
    assert tsquery("Crème  tea,NOT user_prompt") == (
        "('creme') & ('tea' <-> 'not') & ('user' <-> 'prompt':*)"
    )
    assert tsquery("' OR 1=1 --") == "('or') & ('1' <-> '1':*)"
    assert tsquery("-- ; 🙂") is None
    assert tsquery("x" * 3000) is None  # longer than any word the index holds


# --- what PostgreSQL cannot store, and the password ----------------------------------------


@postgres_only
async def test_a_nul_character_is_invalid_not_an_internal_error(store: PostgresStore) -> None:
    error = await raises(
        Code.INVALID_ARGUMENT,
        store.create_chat(ALICE, user_prompt="a\x00b", chat_type="apex", completion_type="basic"),
    )
    assert "NUL" in error.message
    assert await store.list_chats(ALICE) == []


@pytest.mark.parametrize(
    "where",
    [
        "127.0.0.1:5432/apex_no_such_database",
        "127.0.0.1:1/apex",
        "localhost:5432/x",
        "127.0.0.1:5432/x?password=hunter2-secret",
    ],
)
async def test_the_password_of_the_url_never_shows(where: str) -> None:
    url = f"postgresql://postgres:hunter2-secret@{where}"
    if where.startswith("localhost"):  # a user that does not exist
        url = f"postgresql://nobody_{uuid.uuid4().hex[:6]}:hunter2-secret@127.0.0.1:5432/x"
    store = PostgresStore(url)
    assert "hunter2" not in repr(store) and "***" in repr(store)
    error = await raises(Code.UNAVAILABLE, store.open())
    assert "hunter2" not in str(error) and "hunter2" not in repr(error)
    assert "hunter2" not in str(error.__cause__ or "") and error.__suppress_context__


def test_redacted_urls_keep_all_but_the_password() -> None:
    assert redacted_url("postgresql://u:p@h:5433/db?sslmode=require") == (
        "postgresql://u:***@h:5433/db?sslmode=require"
    )
    assert redacted_url("postgres://u@h/db") == "postgres://u@h/db"
    assert redacted_url("postgresql://u:p@[::1]:5432/db") == "postgresql://u:***@[::1]:5432/db"
    assert "p4ss" not in redacted_url("postgresql://u:p4ss@h:port/db")
    assert redacted_url("postgresql://h/db?user=u&password=p4ss&sslmode=require") == (
        "postgresql://h/db?user=u&password=***&sslmode=require"
    )


async def test_without_the_driver_a_postgresql_url_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if apex-mcp[postgres] were not there
    monkeypatch.delitem(sys.modules, "apex_mcp.engine.store.postgres")
    error = await raises(Code.FAILED_PRECONDITION, open_store("postgresql://u:pw@h/db"))
    assert 'pip install "apex-mcp[postgres]"' in error.message and "pw" not in error.message


def test_the_sqlite_store_never_loads_the_postgresql_driver(tmp_path: Any) -> None:
    script = (
        "import asyncio, sys\n"
        "from apex_mcp.engine.store import open_store\n"
        "async def main():\n"
        f"    store = await open_store({str(tmp_path / 'a.db')!r})\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "wanted = ('psycopg', 'apex_mcp.engine.store')\n"
        "print(sorted(m for m in sys.modules if m.startswith(wanted)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "psycopg" not in done.stdout and "apex_mcp.engine.store.sqlite" in done.stdout


@postgres_only
async def test_a_job_watcher_on_one_replica_hears_the_changes_another_makes(
    backend: Any,
) -> None:
    """LISTEN/NOTIFY: a client following a job on one replica hears each step another
    replica writes, without waiting for its next look."""
    one, two = await backend.open(), await backend.open()
    try:
        with anyio.fail_after(60):
            while not two.hears_other_replicas:  # its LISTEN connection is up
                await anyio.sleep(0.01)
        job = await one.create_job(ALICE, request={})
        for step in ("plan", "search", "report"):
            async with two.job_news(job.id) as wait:
                before = len((await two.get_job(ALICE, job.id)).chunks)
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(one.append_chunk, job.id, step)
                    with anyio.fail_after(60):  # not a speed check: without it, 600 s
                        await wait(600)
                assert len((await two.get_job(ALICE, job.id)).chunks) == before + 1
    finally:
        await one.close()
        await two.close()


@postgres_only
async def test_a_replica_whose_listening_connection_drops_listens_again(backend: Any) -> None:
    """The server ends the LISTEN connection (a restart, a proxy's idle timeout): the store
    connects again and hears the other replicas' news as before, its watchers woken meanwhile
    to read their jobs again."""
    one, two = await backend.open(), await backend.open()
    try:
        job = await one.create_job(ALICE, request={})
        with anyio.fail_after(60):
            while not two.hears_other_replicas:
                await anyio.sleep(0.01)
        async with two.job_news(job.id) as wait:
            ended = backend.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query = 'LISTEN apex_jobs'"
            )
            assert ended and all(row[0] for row in ended)
            with anyio.fail_after(60):  # not a speed check: without the wake, 600 s
                await wait(600)  # woken: news may have been missed while it was down
        with anyio.fail_after(60):
            while not two.hears_other_replicas:  # it connected again
                await anyio.sleep(0.01)
        async with two.job_news(job.id) as wait, anyio.create_task_group() as tasks:
            tasks.start_soon(one.append_chunk, job.id, "after the drop")
            with anyio.fail_after(60):
                await wait(600)
        assert [c.chunk for c in (await two.get_job(ALICE, job.id)).chunks] == ["after the drop"]
    finally:
        await one.close()
        await two.close()
