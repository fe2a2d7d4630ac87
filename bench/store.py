"""The store at scale: ``python -m bench.store [--sizes 1k,100k,1M] [--db-dir DIR]``.

For each size, builds a store of that many chats (one user, one completion each; bulk-loaded
with plain sqlite3 in one transaction into the schema SqliteStore makes, the full-text index
rebuilt once at the end), then times through the store API, each call followed by plain
sqlite3 doing the same query or transaction on its own connection (the floor):

- reads: a page of 20 chats after a cursor anywhere in the list, a chat by id, and the first
  search page of 20 for a common word (in half the chats), a rare one and an absent one (the
  floor: the same full-text stream's first 21 rows, without the store's per-chat checks);
- writes: renaming a chat, deleting one, and creating a chat with its first completion;

and prints p50 and p99 of each, and the store/floor ratio's median and p10-p90 spread. Each
operation is timed through its MCP tool too, just before: an in-process ``mcp.Client`` on
``build_server`` over the same store file, as the one stdio user (``list_chats`` with the
same cursor, ``get_chat``, which also reads the chat's completions, ``search_chats``,
``update_chat``, ``delete_chats`` of another chat, ``create_chat``). Then
the write rate: chats/s creating a chat with its first completion, store against plain
sqlite3 doing the same transactions, in alternating blocks. A built database is reused when
``--db-dir`` already holds it (``store-<size>.db``); the writes change it a little.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from apex_mcp.engine import DEFAULT_USER
from apex_mcp.engine.store import SqliteStore, open_store
from apex_mcp.engine.store.sqlite import (
    _AFTER,
    _NEWEST_FIRST,
    LIST_PAGE_SQL,
    SEARCH_STREAM_SQL,
    fts_query,
)

USER = DEFAULT_USER  # the one user of apex-mcp over stdio, so the MCP server sees the chats
WORDS = [f"w{n:04d}" for n in range(2000)]  # the vocabulary of the filler text
START = datetime(2025, 1, 1, tzinfo=UTC)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
BY_ID = "SELECT * FROM chats WHERE id = ? AND user_id = ?"
SEARCHES = {"common": "common", "rare": "rare7", "absent": "absentword"}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


# --- building a store -----------------------------------------------------------------------


def build(path: Path, chats: int) -> None:
    """A store of ``chats`` chats: the schema by SqliteStore, the rows by plain sqlite3."""

    async def create() -> None:
        async with await open_store(path):
            pass

    anyio.run(create)
    rng = random.Random(chats)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a bulk load: durability comes with the end
    conn.execute("BEGIN IMMEDIATE")
    # The full-text index is rebuilt once at the end instead of row by row.
    trigger_sql = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'completions_fts_insert'"
    ).fetchone()[0]
    conn.execute("DROP TRIGGER completions_fts_insert")

    def rows() -> Iterator[tuple[str, ...]]:
        for n in range(chats):
            words = rng.choices(WORDS, k=12)
            if n % 2 == 0:
                words.append("common")
            if n % (chats // 10 or 1) == 7:  # ten chats at any size
                words.append("rare7")
            at = (START + timedelta(milliseconds=n)).strftime(TIME_FORMAT)
            yield str(uuid.uuid4()), str(uuid.uuid4()), " ".join(words), at

    batch: list[tuple[str, ...]] = []
    for row in rows():
        batch.append(row)
        if len(batch) == 10_000:
            insert(conn, batch)
            batch = []
    insert(conn, batch)
    conn.execute(trigger_sql)
    conn.execute("INSERT INTO completions_fts (completions_fts) VALUES ('rebuild')")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()


def insert(conn: sqlite3.Connection, batch: list[tuple[str, ...]]) -> None:
    conn.executemany(
        "INSERT INTO chats (id, user_id, title, chat_type, created_at, updated_at)"
        " VALUES (?, ?, ?, 'apex', ?, ?)",
        [(chat, USER, text[:60], at, at) for chat, _, text, at in batch],
    )
    conn.executemany(
        "INSERT INTO completions (id, chat_id, user_id, completion_type, user_prompt_text,"
        " completion_text, created_at, completed_at) VALUES (?, ?, ?, 'basic', ?, ?, ?, ?)",
        [
            (completion, chat, USER, text, "an answer about " + text, at, at)
            for chat, completion, text, at in batch
        ],
    )


# --- timing ---------------------------------------------------------------------------------


class Pairs:
    """Store and floor times of one operation, taken in pairs, and the tool's time too,
    right before."""

    def __init__(self, name: str) -> None:
        self.name, self.store, self.floor = name, list[float](), list[float]()
        self.tool = list[float]()

    async def time(
        self,
        through_store: Awaitable[Any],
        floor: Callable[[], Any],
        through_tool: Awaitable[Any] | None = None,
    ) -> None:
        if through_tool is not None:
            start = time.perf_counter()
            await through_tool
            self.tool.append(time.perf_counter() - start)
        start = time.perf_counter()
        await through_store
        self.store.append(time.perf_counter() - start)
        start = time.perf_counter()
        floor()
        self.floor.append(time.perf_counter() - start)

    def line(self) -> str:
        ratios = sorted(s / f for s, f in zip(self.store, self.floor, strict=True))
        tool = (ms(self.tool, 50), ms(self.tool, 99)) if self.tool else ("-", "-")
        return (
            f"| {self.name:15} | {tool[0]:>8} | {tool[1]:>8} "
            f"| {ms(self.store, 50):>8} | {ms(self.store, 99):>8} "
            f"| {ms(self.floor, 50):>8} | {ms(self.floor, 99):>8} "
            f"| {statistics.median(ratios):5.1f}x ({pct(ratios, 10):.1f}-{pct(ratios, 90):.1f}) |"
        )


def pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(values: list[float], p: int) -> str:
    return f"{pct(values, p) * 1000:.2f}"


def floor_connection(path: Path) -> sqlite3.Connection:
    # The store's own settings: WAL, synchronous=FULL, foreign keys, explicit transactions.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def in_transaction(conn: sqlite3.Connection, *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for sql, params in statements:
        conn.execute(sql, params).fetchall()
    conn.execute("COMMIT")


def query(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    conn.execute(sql, params).fetchall()


def now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def mcp_server(path: Path) -> Any:
    """The MCP server (all its tools, the embedded engine) on the store at ``path``, as
    ``apex-mcp`` serves its one user over stdio, for an in-process ``mcp.Client``."""
    from apex_mcp.config import Settings
    from apex_mcp.server.app import build_server

    settings = Settings(db=path, backend="local", discover_local_miners=False, log_level="WARNING")
    return build_server(settings)


async def through_tool(client: Any, tool: str, arguments: dict[str, Any]) -> None:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content}")


async def measure(path: Path, runs: int) -> list[Pairs]:
    from mcp import Client

    floor = floor_connection(path)
    rng = random.Random(1)
    mine = "SELECT id, created_at, seq FROM chats WHERE user_id = ?"
    keys = floor.execute(mine, (USER,)).fetchall()
    if not keys:
        raise SystemExit(f"{path} has no chats of {USER!r}: delete it to have it built again")
    async with await open_store(path) as store, Client(mcp_server(path)) as tools:
        signer = await store._cursor_signer()
        await through_tool(tools, "list_chats", {"limit": 1})  # the first call opens the engine
        results = []

        page = Pairs("list page")
        for _ in range(runs):
            _, created_at, seq = rng.choice(keys)
            cursor = signer.make(USER, "chats\0", created_at, seq)
            sql = LIST_PAGE_SQL + _AFTER + _NEWEST_FIRST
            await page.time(
                store.list_chats_page(USER, cursor=cursor),
                partial(query, floor, sql, (USER, created_at, seq, 21)),
                through_tool(tools, "list_chats", {"cursor": cursor}),
            )
        results.append(page)

        get = Pairs("get chat")
        for _ in range(runs):
            chat_id = rng.choice(keys)[0]
            await get.time(
                store.get_chat(USER, chat_id),
                partial(query, floor, BY_ID, (chat_id, USER)),
                through_tool(tools, "get_chat", {"chat_id": chat_id}),
            )
        results.append(get)

        for kind, term in SEARCHES.items():
            search = Pairs(f"search {kind}")
            # The floor: the same full-text stream, its first 21 rows (one chat each here).
            sql = SEARCH_STREAM_SQL + " LIMIT 21"
            params = (fts_query(term), 2**62, USER)
            for _ in range(runs):
                await search.time(
                    store.search_chats_page(USER, term),
                    partial(query, floor, sql, params),
                    through_tool(tools, "search_chats", {"search_term": term}),
                )
            results.append(search)

        update = Pairs("update chat")
        for n in range(runs):
            chat_id = rng.choice(keys)[0]
            rename = (
                "UPDATE chats SET title = coalesce(?, title), chat_type = coalesce(?, chat_type),"
                " updated_at = ? WHERE id = ? AND user_id = ?",
                (f"floor {n}", None, now(), chat_id, USER),
            )
            reread = (BY_ID, (chat_id, USER))
            await update.time(
                store.update_chat(USER, chat_id, title=f"renamed {n}"),
                partial(in_transaction, floor, rename, reread),
                through_tool(tools, "update_chat", {"chat_id": chat_id, "title": f"tool {n}"}),
            )
        results.append(update)

        delete = Pairs("delete chat")
        doomed = rng.sample(keys, 3 * runs)
        for n in range(runs):
            mine, theirs, tools_own = (doomed[3 * n + k][0] for k in range(3))
            remove = ("DELETE FROM chats WHERE id = ? AND user_id = ?", (theirs, USER))
            await delete.time(
                store.delete_chats(USER, [mine]),
                partial(in_transaction, floor, remove),
                through_tool(tools, "delete_chats", {"chat_ids": [tools_own]}),
            )
        results.append(delete)

        create = Pairs("create chat")
        for n in range(runs):
            prompt = {"user_prompt": f"a new question {n} by the tool"}
            await create.time(
                create_through(store, n),
                partial(create_floor, floor, n),
                through_tool(tools, "create_chat", prompt),
            )
        results.append(create)
    floor.close()
    return results


def create_through(store: SqliteStore, n: int) -> Awaitable[Any]:
    prompt = f"a new question {n} about {WORDS[n % len(WORDS)]}"
    return store.create_chat(USER, user_prompt=prompt, chat_type="apex", completion_type="basic")


def create_floor(conn: sqlite3.Connection, n: int) -> None:
    """The transaction create_chat makes, by plain sqlite3."""
    chat_id, at = str(uuid.uuid4()), now()
    prompt = f"a new question {n} about {WORDS[n % len(WORDS)]}"
    in_transaction(
        conn,
        (
            "INSERT INTO chats (id, user_id, title, chat_type, created_at, updated_at)"
            " VALUES (?, ?, ?, 'apex', ?, ?)",
            (chat_id, USER, prompt[:60], at, at),
        ),
        (
            "INSERT INTO completions (id, chat_id, user_id, completion_type, user_prompt_text,"
            " completion_text, metadata, created_at, completed_at)"
            " VALUES (?, ?, ?, 'basic', ?, '', ?, ?, NULL)",
            (str(uuid.uuid4()), chat_id, USER, prompt, json.dumps({}), at),
        ),
    )


async def write_rate(path: Path, chats: int, rounds: int) -> tuple[list[float], list[float]]:
    """Chats/s of ``rounds`` alternating blocks of ``chats`` creations: store, then floor."""
    floor = floor_connection(path)
    store_rates, floor_rates = [], []
    async with await open_store(path) as store:
        for _ in range(rounds):
            start = time.perf_counter()
            for n in range(chats):
                await create_through(store, n)
            store_rates.append(chats / (time.perf_counter() - start))
            start = time.perf_counter()
            for n in range(chats):
                create_floor(floor, n)
            floor_rates.append(chats / (time.perf_counter() - start))
    floor.close()
    return store_rates, floor_rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1k,100k", help="chats per store, e.g. 1k,100k,1M")
    parser.add_argument("--db-dir", type=Path, help="where to build (default: a temporary dir)")
    parser.add_argument("--runs", type=int, default=200, help="calls timed per operation")
    parser.add_argument("--write-chats", type=int, default=200, help="chats per write block")
    parser.add_argument("--write-rounds", type=int, default=5)
    args = parser.parse_args()
    print("$", " ".join(["python -m bench.store", *sys.argv[1:]]))
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, ", end="")
    print(f"{platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        where = args.db_dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for size in [parse_size(s) for s in args.sizes.split(",")]:
            path = where / f"store-{size}.db"
            if not path.exists():
                start = time.perf_counter()
                build(path, size)
                print(f"\nbuilt {size:,} chats in {time.perf_counter() - start:.0f} s")
            print(f"\n{size:,} chats, {args.runs} calls each (ms; ratio median (p10-p90))\n")
            print(
                "| operation       | tool 50  | tool 99  | p50      | p99      "
                "| floor 50 | floor 99 | ratio |"
            )
            print(
                "| --------------- | -------- | -------- | -------- | -------- "
                "| -------- | -------- | ----- |"
            )
            for pairs in anyio.run(measure, path, args.runs):
                print(pairs.line())
            store_rates, floor_rates = anyio.run(
                write_rate, path, args.write_chats, args.write_rounds
            )
            ratios = sorted(s / f for s, f in zip(store_rates, floor_rates, strict=True))
            print(
                f"\nwrites: {statistics.median(store_rates):.0f} chats/s through the store,"
                f" {statistics.median(floor_rates):.0f} by plain sqlite3:"
                f" {statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"
            )


if __name__ == "__main__":
    main()
