"""Storage of the embedded Apex engine: chats, completions and deep-research jobs, per user."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from apex_mcp._dburl import is_database_url
from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.engine.store.base import (
    JOB_STATUSES,
    CachedPage,
    ChatPage,
    Job,
    JobStatus,
    Store,
    StoredReply,
)
from apex_mcp.engine.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from apex_mcp.engine.store.postgres import PostgresStore

    _sqlite_is_a_store: type[Store] = SqliteStore  # mypy checks that they follow the protocol
    _postgres_is_a_store: type[Store] = PostgresStore


async def open_store(target: str | Path) -> SqliteStore | PostgresStore:
    """The store at ``target``, opened (created and migrated if needed): the PostgreSQL
    database of a ``postgresql://`` or ``postgres://`` URL, else the SQLite file at that path.

    Close it with ``await store.close()``, or use it as ``async with await open_store(p)``.
    """
    store: SqliteStore | PostgresStore
    if is_database_url(target):
        try:  # imported here: the SQLite path (stdio start-up) never loads psycopg
            from apex_mcp.engine.store.postgres import PostgresStore
        except ImportError as e:
            raise ApexError(
                Code.FAILED_PRECONDITION,
                f"APEX_DB is a PostgreSQL URL, whose driver is not installed ({e.name}): "
                'pip install "apex-mcp[postgres]"',
            ) from None

        store = PostgresStore(str(target))
    else:
        store = SqliteStore(target)
    await store.open()
    return store


__all__ = [
    "JOB_STATUSES",
    "CachedPage",
    "ChatPage",
    "Job",
    "JobStatus",
    "SqliteStore",
    "Store",
    "StoredReply",
    "open_store",
]
