"""Full-text search over a large store: ``python -m bench.store_search [--chats 50000]``.

Fills a SQLite store (in a temporary directory) with ``--chats`` chats of one completion each,
spread over ``--users`` users, every completion holding a common word, then times
``search_chat_ids`` for a common word, a rare one and a prefix (median of ``--runs``), and
prints the query plan. Each search runs beside plain sqlite3 asking the full-text index
alone for the same query (the floor): the ratio and its spread over the runs. Bulk rows go
in with plain SQL, through the store's own schema.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio

from apex_mcp.engine.store import open_store
from apex_mcp.engine.store.sqlite import SEARCH_SQL, fts_query

FTS_ONLY = "SELECT rowid FROM completions_fts WHERE completions_fts MATCH ?"
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "sigma"]


def fill(path: Path, chats: int, users: int) -> None:
    import sqlite3

    rng = random.Random(7)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    now = "2026-01-01T00:00:00.000000Z"
    for n in range(chats):
        user, chat_id = f"user-{n % users}", str(uuid.uuid4())
        prompt = " ".join(rng.choice(WORDS) for _ in range(12)) + f" common chat{n}"
        conn.execute(
            "INSERT INTO chats (id, user_id, title, chat_type, created_at, updated_at)"
            " VALUES (?, ?, 't', 'apex', ?, ?)",
            (chat_id, user, now, now),
        )
        conn.execute(
            "INSERT INTO completions (id, chat_id, user_id, completion_type, user_prompt_text,"
            " completion_text, created_at) VALUES (?, ?, ?, 'basic', ?, ?, ?)",
            (str(uuid.uuid4()), chat_id, user, prompt, "an answer about " + prompt, now),
        )
    conn.execute("COMMIT")
    conn.close()


async def measure(path: Path, runs: int) -> None:
    import sqlite3

    # The floor, run interleaved with the store's search: plain sqlite3 asking the full-text
    # index alone for the same query (no join to chats, no ordering, no thread hop).
    bare = sqlite3.connect(path)
    async with await open_store(path) as store:
        for term in ("common", "chat4242", "alp"):
            times, floors = [], []
            for _ in range(runs):
                start = time.perf_counter()
                found = await store.search_chat_ids("user-0", term)
                times.append(time.perf_counter() - start)
                start = time.perf_counter()
                bare.execute(FTS_ONLY, (fts_query(term),)).fetchall()
                floors.append(time.perf_counter() - start)
            ratios = sorted(t / f for t, f in zip(times, floors, strict=True))
            median = statistics.median(times) * 1000
            print(
                f"{term!r:12} {len(found):6} chats  median {median:9.1f} ms"
                f"  bare FTS {statistics.median(floors) * 1000:8.1f} ms"
                f"  ratio {statistics.median(ratios):5.1f}x ({ratios[0]:.1f}-{ratios[-1]:.1f})"
            )
        plan = await store._read(
            lambda conn: conn.execute(
                "EXPLAIN QUERY PLAN " + SEARCH_SQL, (fts_query("common"), "user-0", "user-0")
            ).fetchall()
        )
        print("plan:", " | ".join(str(row["detail"]) for row in plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("$", " ".join(["python -m bench.store_search", *sys.argv[1:]]))
    print(f"{platform.python_version()} SQLite on {platform.machine()}, {args.chats} chats")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "apex.db"

        async def create() -> None:
            async with await open_store(path):
                pass

        anyio.run(create)
        start = time.perf_counter()
        fill(path, args.chats, args.users)
        print(f"filled in {time.perf_counter() - start:.1f} s")
        anyio.run(measure, path, args.runs)


if __name__ == "__main__":
    main()
