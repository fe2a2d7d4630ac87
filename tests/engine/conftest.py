"""The store's tests run against both stores: SQLite files and a PostgreSQL database.

``store`` is an open store of the ``backend`` the test is parametrized with; a test that is
about SQLite itself (its files, pragmas, plans, threads) takes ``@sqlite_only``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from apex_mcp.engine.store import SqliteStore, Store, open_store

BACKENDS = ["sqlite", "postgres"]
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def make(self) -> Any:
        return SqliteStore(self.path)

    async def open(self) -> Any:
        return await open_store(self.path)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of ``sql``, run by a connection of the test's own."""
        import sqlite3

        with closing(sqlite3.connect(self.path)) as conn, conn:
            return conn.execute(sql).fetchall()


class PostgresBackend:
    name = "postgres"

    def __init__(self, database: Any) -> None:
        self.database = database

    def make(self) -> Any:
        from apex_mcp.engine.store.postgres import PostgresStore

        return PostgresStore(self.database.url)

    async def open(self) -> Any:
        return await open_store(self.database.url)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return list(self.database.query(sql))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Any]:
    """The session's own PostgreSQL database, migrated; dropped at the end."""
    from tests import postgres

    database = postgres.session_database()
    if isinstance(database, str):
        pytest.skip(database)

    async def migrate() -> None:
        store = await open_store(database.url)
        await store.close()

    asyncio.run(migrate())
    yield database
    database.drop()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "apex.db"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, db_path: Path) -> Any:
    if request.param == "sqlite":
        return SqliteBackend(db_path)
    database = request.getfixturevalue("postgres_database")
    from apex_mcp.engine.store.postgres import TABLES

    # A clean database for each test: emptying its small tables is faster than a new schema.
    database.query("; ".join(f"DELETE FROM {table}" for table in TABLES))
    return PostgresBackend(database)


@pytest.fixture
async def store(backend: Any) -> AsyncIterator[Store]:
    async with await backend.open() as opened:
        yield opened
