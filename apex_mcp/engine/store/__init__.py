"""Storage of the embedded Apex engine: chats, completions and deep-research jobs, per user."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from apex_mcp.engine.store.base import (
    JOB_STATUSES,
    ChatPage,
    Job,
    JobStatus,
    Store,
    StoredReply,
)
from apex_mcp.engine.store.sqlite import SqliteStore

if TYPE_CHECKING:
    _sqlite_is_a_store: type[Store] = SqliteStore  # mypy checks that it follows the protocol


async def open_store(path: str | Path) -> SqliteStore:
    """The store in the SQLite file at ``path``, opened (created and migrated if needed).

    Close it with ``await store.close()``, or use it as ``async with await open_store(p)``.
    """
    store = SqliteStore(path)
    await store.open()
    return store


__all__ = [
    "JOB_STATUSES",
    "ChatPage",
    "Job",
    "JobStatus",
    "SqliteStore",
    "Store",
    "StoredReply",
    "open_store",
]
