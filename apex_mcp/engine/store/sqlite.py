"""SqliteStore: the engine's ``Store`` in one SQLite file, safe for several processes at once.

- WAL, ``synchronous=FULL``, foreign keys on, a 30 s busy timeout, and every write in a
  ``BEGIN IMMEDIATE`` transaction: a second process waits for the write lock instead of
  failing half-way or losing a write.
- One writer connection, used by one worker thread at a time (a ``CapacityLimiter(1)``),
  and up to ``READERS`` reader connections beside it (``query_only``), each in a worker
  thread: WAL lets them read while the writer writes, so a long search never holds back
  another user's write, and SQLite never blocks the event loop.
- The schema is versioned with ``PRAGMA user_version``: ``MIGRATIONS[n]`` takes version n to
  n + 1, each in its own transaction, at open.
- Timestamps are stored as fixed-width UTC text with microseconds, so they sort as text.
- Listings are paged by keyset: a page is one indexed range read, however many chats there
  are. Their cursors are signed with a key kept in the database (see ``_shared.Cursors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread

from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.models import (
    ChatSession,
    DeepResearcherResultChunk,
    ParsedChat,
    ParsedCompletion,
    StoredChatCompletion,
)
from apex_mcp.engine.store._shared import (
    REPLY_SECONDS,
    Cursors,
    OpenClose,
    ago,
    cached_page,
    chat_page,
    chat_session,
    check_lease,
    check_limit,
    check_statuses,
    check_uuid,
    format_time,
    has_status_already,
    json_object,
    make_job,
    new_chat,
    new_completion,
    new_id,
    not_found,
    not_unicode,
    parsed_completion,
    stored_completion,
    stored_reply,
    timestamp,
    title_from,
    unique_uuids,
)
from apex_mcp.engine.store.base import (
    CachedPage,
    ChatPage,
    Job,
    JobSignals,
    JobStatus,
    StoredReply,
)

T = TypeVar("T")

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's write to finish
READERS = 4  # reader connections beside the writer; a read waits for a free one
# A small read runs on the event loop's own thread: a hop to a worker thread and back costs
# several times the read itself (about 0.2 ms against 0.02 ms for a chat by id, on 2 busy
# cores). One that takes more SQLite VM steps than this (a row costs about 11: a page of 100
# chats fits; a millisecond at most of the loop's time), or would wait for a lock, is
# interrupted there and runs again in a worker thread.
INLINE_STEPS = 4_000
_STEPS_PER_CHECK = 400
# A small write (a few rows by key, short texts) runs on the event loop's thread too: the hop
# to the writer thread and back costs about 0.25 ms, half of a whole create_chat on a local
# SSD (issue 14). Its commit's fsync holds the loop meanwhile, so small writes go to the
# writer thread instead while they take longer than INLINE_WRITE_SECONDS on average (a slow or
# network disk), while another write is under way, or when another process holds the lock.
# One that takes more than INLINE_STEPS (a chat's delete with its completions costs about
# 250) is interrupted and rolled back there, and runs again in the writer thread.
INLINE_WRITE_SECONDS = 0.001
INLINE_WRITE_CHARS = 8_000  # more text than this is a long index update: never inline
INLINE_DELETES = 10  # more ids than this to delete is a long write: never inline
# An inline commit never checkpoints the WAL (that copies up to megabytes into the database
# file); one small write in this many runs in the writer thread, where SQLite checkpoints as
# usual (once the WAL holds 1,000 pages).
CHECKPOINT_EVERY = 100
_AVERAGE_WEIGHT = 0.1  # of the newest small write in the running average of their times

MIGRATIONS: list[str] = [
    # 1: chats, completions (with a full-text index), deep-research jobs and their chunks.
    """
    CREATE TABLE chats (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        title TEXT NOT NULL,
        chat_type TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (id, user_id)
    );
    CREATE INDEX chats_by_user ON chats (user_id, created_at);

    CREATE TABLE completions (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        chat_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        completion_type TEXT NOT NULL,
        user_prompt_text TEXT NOT NULL,
        completion_text TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_type(metadata) = 'object'),
        error_message TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        completed_at TEXT,
        UNIQUE (id, user_id),
        FOREIGN KEY (chat_id, user_id) REFERENCES chats (id, user_id) ON DELETE CASCADE
    );
    CREATE INDEX completions_by_chat ON completions (chat_id, user_id, created_at);
    CREATE INDEX completions_by_user ON completions (user_id, created_at);

    CREATE VIRTUAL TABLE completions_fts USING fts5 (
        user_prompt_text,
        completion_text,
        content = 'completions',
        content_rowid = 'seq',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER completions_fts_insert AFTER INSERT ON completions BEGIN
        INSERT INTO completions_fts (rowid, user_prompt_text, completion_text)
        VALUES (new.seq, new.user_prompt_text, new.completion_text);
    END;
    CREATE TRIGGER completions_fts_delete AFTER DELETE ON completions BEGIN
        INSERT INTO completions_fts (completions_fts, rowid, user_prompt_text, completion_text)
        VALUES ('delete', old.seq, old.user_prompt_text, old.completion_text);
    END;
    CREATE TRIGGER completions_fts_update
    AFTER UPDATE OF user_prompt_text, completion_text ON completions BEGIN
        INSERT INTO completions_fts (completions_fts, rowid, user_prompt_text, completion_text)
        VALUES ('delete', old.seq, old.user_prompt_text, old.completion_text);
        INSERT INTO completions_fts (rowid, user_prompt_text, completion_text)
        VALUES (new.seq, new.user_prompt_text, new.completion_text);
    END;

    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
        request TEXT NOT NULL CHECK (json_type(request) = 'object'),
        completion_id TEXT REFERENCES completions (id) ON DELETE SET NULL,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (id, user_id)
    );
    CREATE INDEX jobs_by_status ON jobs (status, created_at);
    CREATE INDEX jobs_by_completion ON jobs (completion_id);

    CREATE TABLE job_chunks (
        job_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        seq_id INTEGER NOT NULL CHECK (seq_id > 0),
        chunk TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (job_id, seq_id),
        FOREIGN KEY (job_id, user_id) REFERENCES jobs (id, user_id) ON DELETE CASCADE
    ) WITHOUT ROWID;
    """,
    # 2: the miners a job runs with, when not the engine's own: the name of a set a runner
    # holds in memory (a session's miners, whose keys are never written here).
    """
    ALTER TABLE jobs ADD COLUMN miners TEXT;
    """,
    # 3: when each job was last claimed, so claims go round the users (see claim_next_job).
    """
    ALTER TABLE jobs ADD COLUMN started_at TEXT;
    CREATE INDEX jobs_by_user_status ON jobs (user_id, status);
    CREATE INDEX jobs_by_user_started ON jobs (user_id, started_at);
    """,
    # 4: the replies to writes sent with an idempotency key, so a retry gets the same reply
    # (reply NULL: the first try is being answered).
    """
    CREATE TABLE replies (
        user_id TEXT NOT NULL,
        key TEXT NOT NULL,
        method TEXT NOT NULL,
        request_digest TEXT NOT NULL,
        reply BLOB,
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX replies_by_age ON replies (created_at);
    """,
    # 5: a page of one chat type's chats is one index range too (chats_by_user, with the
    # rowid seq it ends with, already orders the user's chats); and the key that signs the
    # cursors of paged listings, kept here so cursors outlive a restart and hold across
    # processes sharing the file.
    """
    CREATE INDEX chats_by_user_type ON chats (user_id, chat_type, created_at);
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO secrets (name, value) VALUES ('cursor', randomblob(32));
    """,
    # 6: a job's lease (see Store): its attempt, one more at each claim, which its runner's
    # writes must name; and how often it was taken over from a runner that was lost.
    """
    ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: web pages read and extracted, by normalized URL, for web search and research to
    # reuse within their time to live (see get_page).
    """
    CREATE TABLE pages (
        url TEXT PRIMARY KEY,
        final_url TEXT NOT NULL,
        content TEXT NOT NULL,
        fetched_at TEXT NOT NULL
    );
    CREATE INDEX pages_by_age ON pages (fetched_at);
    """,
    # 8: what a job's searches may return (domains, recency), as a JSON object.
    """
    ALTER TABLE jobs ADD COLUMN search_filters TEXT;
    """,
]

# The full-text index drives the search: CROSS JOIN keeps SQLite's planner from starting at
# the user's completions and running the MATCH once per row (quadratic: 83 s at 50k chats).
# Parameters: the FTS query, the user, the user.
SEARCH_SQL = (
    "SELECT chats.id FROM ("
    " SELECT DISTINCT completions.chat_id AS chat_id FROM completions_fts"
    " CROSS JOIN completions ON completions.seq = completions_fts.rowid"
    " WHERE completions_fts MATCH ? AND completions.user_id = ?) AS found"
    " CROSS JOIN chats ON chats.id = found.chat_id AND chats.user_id = ?"
    " ORDER BY chats.updated_at DESC, chats.seq DESC"
)

# A page of chats, newest first, after the cursor's (created_at, seq) if there is one. The
# key is immutable: created_at and seq never change, so a chat updated between two pages
# keeps its place, and a chat created meanwhile sorts before the pages already read. Paging
# therefore returns every chat that exists throughout exactly once (updated_at, which the
# issue suggested, moves an updated chat and would show it twice or never). It is also the
# order GetChatSessions has always had. seq ends every index on chats (it is the rowid), so
# the ORDER BY and the range are read from the index, without a sort.
_AFTER = " AND (chats.created_at, chats.seq) < (?, ?)"
_NEWEST_FIRST = " ORDER BY chats.created_at DESC, chats.seq DESC LIMIT ?"
LIST_PAGE_SQL = "SELECT * FROM chats WHERE user_id = ?"

# Search, paged (see search_chats_page): the user's matching completions, newest first,
# read from the full-text index as a stream, so a page stops after its chats are found
# instead of gathering and sorting every match (15 s for a word in half of 1M chats).
# Parameters: the FTS query, the stream's upper bound (exclusive), the user.
SEARCH_STREAM_SQL = (
    "SELECT completions_fts.rowid AS seq, completions.chat_id AS chat_id FROM completions_fts"
    " CROSS JOIN completions ON completions.seq = completions_fts.rowid"
    " WHERE completions_fts MATCH ? AND completions_fts.rowid < ? AND completions.user_id = ?"
    " ORDER BY completions_fts.rowid DESC"
)


class SqliteStore(OpenClose):
    """The ``Store`` in a SQLite file. ``await open()`` before use (or ``async with``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        # Reader connections, made when first needed; the idle ones wait in the list.
        self._readers: list[sqlite3.Connection] = []
        self._reader_slots: anyio.CapacityLimiter | None = None
        self._cursors: Cursors | None = None
        # The threads the connections run in: on asyncio, a hop to one of these costs about
        # half of anyio.to_thread's, which is a quarter of a small write's time (issue 14).
        self._threads: ThreadPoolExecutor | None = None
        self._signals = JobSignals()  # news of the jobs this store changes
        # The connection of the small reads on the event loop's thread (``_read(inline=True)``).
        self._inline: sqlite3.Connection | None = None
        self._inline_lock = threading.Lock()  # a store used from two threads' loops at once
        self._steps_left = 0
        # Small writes: their running average time, how many ran inline since the last one in
        # the writer thread, and whether the writer connection is set up for inline writes.
        self._write_seconds = 0.0
        self._inline_writes = 0
        self._writer_inline = False
        self._writer_lock = threading.Lock()  # held while the writer connection works
        self._write_steps_left = 0

    # --- lifecycle ---

    async def open(self) -> None:
        """Create the file and its directory if missing and bring the schema up to date."""
        if self._conn is not None:
            return
        try:
            conn = await anyio.to_thread.run_sync(self._connect)
        except sqlite3.Error as e:
            raise _apex_error(e, self.path) from e
        except OSError as e:  # e.g. the directory cannot be created
            raise ApexError(Code.FAILED_PRECONDITION, f"cannot open {self.path}: {e}") from e
        self._conn, self._limiter = conn, anyio.CapacityLimiter(1)
        self._reader_slots = anyio.CapacityLimiter(READERS)
        # One thread per reader slot and one for the writer: a call never waits for a thread.
        self._threads = ThreadPoolExecutor(READERS + 1, thread_name_prefix="apex-store")
        try:
            self._inline = await self._guarded(self._connect_inline)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        conn, limiter, slots = self._conn, self._limiter, self._reader_slots
        if conn is None or limiter is None or slots is None:
            return
        self._conn = None
        # Shielded: a cancelled caller must still wait for the running calls and close the file.
        with anyio.CancelScope(shield=True):
            held = [object() for _ in range(READERS)]
            for borrower in held:  # every reader slot: the reads under way are over
                await slots.acquire_on_behalf_of(borrower)
            readers, self._readers = self._readers, []
            with self._inline_lock:
                inline, self._inline = self._inline, None
            if inline is not None:
                readers.append(inline)
            for reader in readers:
                await anyio.to_thread.run_sync(reader.close)
            await anyio.to_thread.run_sync(conn.close, limiter=limiter)
            if self._threads is not None:
                self._threads.shutdown(wait=False)  # idle now: its threads end at once
                self._threads = None
            for borrower in held:  # reads that waited for a slot now see the store closed
                slots.release_on_behalf_of(borrower)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves; timeout is the busy timeout.
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            mode = _enable_wal(conn)
            if mode != "wal":
                raise ApexError(
                    Code.FAILED_PRECONDITION,
                    f"SQLite cannot use WAL mode for {self.path} (it says {mode!r}); "
                    "put the database on a local disk",
                )
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = ON")  # reads only: every write goes through the writer
        return conn

    def _connect_inline(self) -> sqlite3.Connection:
        # No busy timeout: the event loop never waits for a lock; such a read moves to a thread.
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = ON")
        conn.set_progress_handler(self._step, _STEPS_PER_CHECK)
        return conn

    def _step(self) -> int:
        """SQLite's progress handler of the inline connection: non-zero interrupts the read."""
        self._steps_left -= _STEPS_PER_CHECK
        return 1 if self._steps_left == -_STEPS_PER_CHECK else 0  # once: never the ROLLBACK

    async def _read(self, work: Callable[[sqlite3.Connection], T], *, inline: bool = False) -> T:
        # On a reader connection of its own, in a deferred transaction: several SELECTs see
        # one consistent snapshot, and the writer goes on meanwhile. ``inline``: ``work`` is a
        # few indexed SELECTs, tried first on the event loop's thread (see INLINE_STEPS).
        slots = self._reader_slots
        if self._conn is None or slots is None:
            raise RuntimeError("the store is not open: await store.open() first")
        if inline:
            done = self._read_inline(work)
            if done is not _MOVED:
                return cast(T, done)
        async with slots:
            if self._conn is None:
                raise ApexError(Code.UNAVAILABLE, f"the database {self.path} was closed")
            reader = self._readers.pop() if self._readers else None
            try:
                if reader is None:
                    reader = await self._guarded(self._connect_reader)
                # Not abandoned on cancel: the connection comes back only when its thread is done.
                return await self._guarded(lambda: _in_transaction(reader, work, "BEGIN"))
            finally:
                if reader is not None:
                    self._readers.append(reader)

    def _read_inline(self, work: Callable[[sqlite3.Connection], T]) -> T | object:
        """``work``'s result, or ``_MOVED`` when it must run in a thread instead (too long,
        a lock to wait for, or the inline connection in use by another thread)."""
        conn = self._inline
        if conn is None or not self._inline_lock.acquire(blocking=False):
            return _MOVED
        try:
            self._steps_left = INLINE_STEPS
            with _apex_errors(self.path):
                try:
                    return _in_transaction(conn, work, "BEGIN")
                except sqlite3.OperationalError as e:
                    code = getattr(e, "sqlite_errorcode", None) or 0  # extended: the low byte
                    if self._steps_left < 0 or code & 0xFF in _WAITS:
                        return _MOVED
                    raise
                finally:
                    if conn.in_transaction:  # an interrupted ROLLBACK: never keep a snapshot open
                        conn.execute("ROLLBACK")
        finally:
            self._inline_lock.release()

    async def _write(self, work: Callable[[sqlite3.Connection], T], *, small: bool = False) -> T:
        # IMMEDIATE takes the write lock up front (waiting up to BUSY_TIMEOUT for it), so a
        # transaction never fails half-way because another process wrote in between.
        # ``small``: a few rows by key and short texts, tried first on the loop's thread.
        if not small:
            return await self._run(lambda conn: self._in_writer(conn, work, inline=False))
        if self._write_seconds <= INLINE_WRITE_SECONDS and self._inline_writes < CHECKPOINT_EVERY:
            done = self._write_inline(work)
            if done is _TOO_LONG:  # long for its steps, not for the disk: not in the average
                return await self._run(lambda conn: self._in_writer(conn, work, inline=False))
            if done is not _MOVED:
                return cast(T, done)
        self._inline_writes = 0
        return await self._run(lambda conn: self._timed(conn, work))

    def _write_inline(self, work: Callable[[sqlite3.Connection], T]) -> T | object:
        """``work``'s result, or ``_MOVED`` when it must run in the writer thread instead
        (a write under way, or the lock held by another process), ``_TOO_LONG`` when it was
        interrupted after INLINE_STEPS (and rolled back)."""
        conn, limiter = self._conn, self._limiter
        if conn is None or limiter is None or limiter.borrowed_tokens:
            return _MOVED
        # No await from here on: nothing else on this loop can start a write meanwhile.
        if not self._writer_lock.acquire(blocking=False):
            return _MOVED  # the writer thread, driven from another thread's loop
        try:
            started = time.perf_counter()
            with _apex_errors(self.path):
                self._set_writer(conn, inline=True)
                self._write_steps_left = INLINE_STEPS
                try:
                    done = _in_transaction(conn, work, "BEGIN IMMEDIATE")
                except sqlite3.OperationalError as e:
                    if self._write_steps_left < 0:
                        return _TOO_LONG
                    if (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF in _WAITS:
                        return _MOVED  # nothing was written: the thread waits for the lock
                    raise
            self._average(time.perf_counter() - started)
            self._inline_writes += 1
            return done
        finally:
            self._writer_lock.release()

    def _timed(self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        """A small write in the writer thread, its time in the running average: from when it
        holds the lock (the wait for another process says nothing of the disk) to the end."""
        started = None

        def timed_work(conn: sqlite3.Connection) -> T:
            nonlocal started
            started = time.perf_counter()
            return work(conn)

        try:
            return self._in_writer(conn, timed_work, inline=False)
        finally:
            if started is not None:
                self._average(time.perf_counter() - started)

    def _average(self, seconds: float) -> None:
        self._write_seconds += _AVERAGE_WEIGHT * (seconds - self._write_seconds)

    def _in_writer(
        self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], *, inline: bool
    ) -> T:
        with self._writer_lock:
            self._set_writer(conn, inline=inline)
            return _in_transaction(conn, work, "BEGIN IMMEDIATE")

    def _set_writer(self, conn: sqlite3.Connection, *, inline: bool) -> None:
        """Inline, the writer never waits for a lock (the write moves to its thread instead),
        never checkpoints and stops after INLINE_STEPS; in its thread, it waits up to
        BUSY_TIMEOUT, checkpoints as usual and runs to the end."""
        if self._writer_inline == inline:
            return
        conn.execute(f"PRAGMA busy_timeout = {0 if inline else int(BUSY_TIMEOUT * 1000)}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {0 if inline else 1000}")
        conn.set_progress_handler(self._write_step if inline else None, _STEPS_PER_CHECK)
        self._writer_inline = inline

    def _write_step(self) -> int:
        """SQLite's progress handler of an inline write: non-zero interrupts it."""
        self._write_steps_left -= _STEPS_PER_CHECK
        return 1 if self._write_steps_left == -_STEPS_PER_CHECK else 0  # once: never the ROLLBACK

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn, limiter = self._conn, self._limiter
        if conn is None or limiter is None:
            raise RuntimeError("the store is not open: await store.open() first")
        async with limiter:
            return await self._guarded(lambda: work(conn))

    async def _guarded(self, call: Callable[[], T]) -> T:
        """``call()`` in a worker thread, its SQLite errors made ``ApexError``s. Never
        abandoned on cancel: the caller waits for the thread, so a connection is only ever
        in one thread at a time."""
        with _apex_errors(self.path):
            if self._threads is not None and _on_asyncio():
                with anyio.CancelScope(shield=True):
                    return await asyncio.wrap_future(self._threads.submit(call))
            return await anyio.to_thread.run_sync(call)

    # --- chats and completions ---

    async def create_chat(
        self,
        user_id: str,
        *,
        user_prompt: str,
        chat_type: str,
        completion_type: str,
        title: str | None = None,
        completion_text: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> tuple[ParsedChat, ParsedCompletion]:
        """A new chat with its first completion, in one transaction (one fsync).

        Without a ``title``, the chat is titled with the start of the prompt. The completion
        may start with its text (then completed_at is set) and metadata, so a caller that
        has them does not need a second write.
        """
        chat_id, completion_id = new_id(), new_id()
        title = title_from(user_prompt) if title is None else title
        metadata_json = "{}" if metadata is None else json_object(metadata, "metadata")

        def write(conn: sqlite3.Connection) -> str:
            now = timestamp()
            conn.execute(
                "INSERT INTO chats (id, user_id, title, chat_type, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (chat_id, user_id, title, chat_type, now, now),
            )
            conn.execute(
                "INSERT INTO completions (id, chat_id, user_id, completion_type,"
                " user_prompt_text, completion_text, metadata, created_at, completed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    completion_id,
                    chat_id,
                    user_id,
                    completion_type,
                    user_prompt,
                    completion_text,
                    metadata_json,
                    now,
                    now if completion_text else None,
                ),
            )
            return now

        created = await self._write(
            write, small=_small(user_prompt, completion_text, metadata_json)
        )
        first = new_completion(
            completion_id,
            chat_id,
            created,
            user_prompt,
            completion_type,
            completion_text,
            metadata_json,
        )
        return new_chat(chat_id, title, chat_type, first)

    async def create_completion(
        self, user_id: str, chat_id: str, *, user_prompt: str, completion_type: str
    ) -> ParsedCompletion:
        """A new completion (empty ``completion_text``) in a chat; bumps the chat's updated_at."""
        chat_id = check_uuid(chat_id, "chat id")
        completion_id = new_id()

        def write(conn: sqlite3.Connection) -> str:
            now = timestamp()
            bumped = conn.execute(
                "UPDATE chats SET updated_at = ? WHERE id = ? AND user_id = ?",
                (now, chat_id, user_id),
            )
            if bumped.rowcount == 0:
                raise not_found("chat", chat_id)
            conn.execute(
                "INSERT INTO completions (id, chat_id, user_id, completion_type, user_prompt_text,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (completion_id, chat_id, user_id, completion_type, user_prompt, now),
            )
            return now

        created = await self._write(write, small=_small(user_prompt))
        return new_completion(completion_id, chat_id, created, user_prompt, completion_type)

    async def list_chats(self, user_id: str, chat_type: str | None = None) -> list[ChatSession]:
        """The user's chats, newest first; only those of ``chat_type`` if given (not empty)."""
        sql = "SELECT * FROM chats WHERE user_id = ?"
        params: tuple[str, ...] = (user_id,)
        if chat_type:
            sql += " AND chat_type = ?"
            params += (chat_type,)
        sql += " ORDER BY created_at DESC, seq DESC"
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall(), inline=True)
        return [chat_session(row) for row in rows]

    async def list_chats_page(
        self,
        user_id: str,
        *,
        chat_type: str | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> ChatPage:
        """A page of the user's chats, newest first (the order of ``list_chats``), only those
        of ``chat_type`` if given (not empty). Pass the page's ``next_cursor`` for the next
        page: each chat that exists throughout the paging comes exactly once, whatever is
        created or updated between pages."""
        listing = f"chats\0{chat_type or ''}"
        sql, params = LIST_PAGE_SQL, [user_id]
        if chat_type:
            sql += " AND chat_type = ?"
            params.append(chat_type)
        return await self._page(user_id, listing, sql, params, cursor, limit)

    async def _page(
        self,
        user_id: str,
        listing: str,
        sql: str,
        params: list[str],
        cursor: str | None,
        limit: int,
    ) -> ChatPage:
        cursors = await self._cursor_signer()
        check_limit(limit)
        args: list[str | int] = [*params]
        if cursor is not None:
            sql += _AFTER
            args += cursors.key(cursor, user_id, listing)
        sql += _NEWEST_FIRST
        args.append(limit + 1)  # one more: whether there is a next page
        rows = await self._read(lambda conn: conn.execute(sql, args).fetchall(), inline=True)
        return chat_page(
            rows,
            limit,
            lambda last: cursors.make(user_id, listing, last["created_at"], last["seq"]),
        )

    async def _cursor_signer(self) -> Cursors:
        if self._cursors is None:  # read once, when first needed
            row = await self._read(
                lambda conn: conn.execute(
                    "SELECT value FROM secrets WHERE name = 'cursor'"
                ).fetchone(),
                inline=True,
            )
            self._cursors = Cursors(bytes(row[0]))
        return self._cursors

    async def get_chat(self, user_id: str, chat_id: str) -> ChatSession:
        """The user's chat: one read of the unique index on ids."""
        chat_id = check_uuid(chat_id, "chat id")
        row = await self._read(lambda conn: _chat_row(conn, user_id, chat_id), inline=True)
        return chat_session(row)

    async def list_completions(self, user_id: str, chat_id: str) -> list[StoredChatCompletion]:
        """The chat's completions, oldest first."""
        chat_id = check_uuid(chat_id, "chat id")

        def read(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            _chat_row(conn, user_id, chat_id)
            return conn.execute(
                "SELECT * FROM completions WHERE chat_id = ? AND user_id = ?"
                " ORDER BY created_at, seq",
                (chat_id, user_id),
            ).fetchall()

        return [_stored_completion(row) for row in await self._read(read, inline=True)]

    async def get_completion(self, user_id: str, completion_id: str) -> StoredChatCompletion:
        completion_id = check_uuid(completion_id, "completion id")
        row = await self._read(
            lambda conn: _completion_row(conn, user_id, completion_id), inline=True
        )
        return _stored_completion(row)

    async def update_chat(
        self, user_id: str, chat_id: str, *, title: str | None = None, chat_type: str | None = None
    ) -> ChatSession:
        """Change the title and/or chat type (None leaves it) and bump updated_at."""
        chat_id = check_uuid(chat_id, "chat id")
        if title is None and chat_type is None:
            return await self.get_chat(user_id, chat_id)

        def write(conn: sqlite3.Connection) -> sqlite3.Row:
            conn.execute(
                "UPDATE chats SET title = coalesce(?, title), chat_type = coalesce(?, chat_type),"
                " updated_at = ? WHERE id = ? AND user_id = ?",
                (title, chat_type, timestamp(), chat_id, user_id),
            )
            return _chat_row(conn, user_id, chat_id)

        return chat_session(await self._write(write, small=_small(title or "")))

    async def update_completion(
        self,
        user_id: str,
        completion_id: str,
        *,
        completion_text: str | None = None,
        user_prompt_text: str | None = None,
        metadata: dict[str, Any] | None = None,
        error_message: str | None = None,
    ) -> StoredChatCompletion:
        """Set the given fields (None leaves a field as is) and bump the chat's updated_at.

        ``metadata`` replaces the stored object; setting ``completion_text`` sets completed_at.
        """
        completion_id = check_uuid(completion_id, "completion id")
        changes: dict[str, str] = {}
        if completion_text is not None:
            changes["completion_text"] = completion_text
        if user_prompt_text is not None:
            changes["user_prompt_text"] = user_prompt_text
        if metadata is not None:
            changes["metadata"] = json_object(metadata, "metadata")
        if error_message is not None:
            changes["error_message"] = error_message

        def write(conn: sqlite3.Connection) -> sqlite3.Row:
            if changes:
                if "completion_text" in changes:
                    changes["completed_at"] = timestamp()
                # Column names come from the fixed keys above, never from the caller.
                assignments = ", ".join(f"{column} = ?" for column in changes)
                conn.execute(
                    f"UPDATE completions SET {assignments} WHERE id = ? AND user_id = ?",
                    (*changes.values(), completion_id, user_id),
                )
            row = _completion_row(conn, user_id, completion_id)
            if changes:
                _touch_chats(conn, user_id, [row["chat_id"]])
            return row

        return _stored_completion(await self._write(write, small=_small(*changes.values())))

    async def delete_chats(self, user_id: str, chat_ids: list[str]) -> int:
        """Delete the user's chats among ``chat_ids`` with their completions; how many went."""
        ids = unique_uuids(chat_ids, "chat id")
        return await self._write(
            lambda conn: _delete_each(
                conn, "DELETE FROM chats WHERE id = ? AND user_id = ?", user_id, ids
            ),
            small=len(ids) <= INLINE_DELETES,
        )

    async def delete_completions(self, user_id: str, completion_ids: list[str]) -> int:
        """Delete the user's completions among ``completion_ids`` and bump their chats'
        updated_at; how many went."""
        ids = unique_uuids(completion_ids, "completion id")

        def write(conn: sqlite3.Connection) -> int:
            chats = {
                row["chat_id"]
                for completion_id in ids
                for row in conn.execute(
                    "SELECT chat_id FROM completions WHERE id = ? AND user_id = ?",
                    (completion_id, user_id),
                )
            }
            sql = "DELETE FROM completions WHERE id = ? AND user_id = ?"
            deleted = _delete_each(conn, sql, user_id, ids)
            _touch_chats(conn, user_id, sorted(chats))
            return deleted

        return await self._write(write, small=len(ids) <= INLINE_DELETES)

    async def search_chat_ids(self, user_id: str, term: str) -> list[str]:
        """Ids of the user's chats with a completion matching every word of ``term`` in its
        prompt or text (the last word as a prefix), most recently updated first."""
        query = fts_query(term)
        if query is None:
            return []
        rows = await self._read(
            lambda conn: conn.execute(SEARCH_SQL, (query, user_id, user_id)).fetchall()
        )
        return [row["id"] for row in rows]

    async def search_chats_page(
        self, user_id: str, term: str, *, cursor: str | None = None, limit: int = 20
    ) -> ChatPage:
        """A page of the user's chats that ``search_chat_ids`` finds for ``term`` (the same
        matching), with their titles, the chat with the newest matching completion first.

        Each chat comes once, at its newest matching completion among those that existed
        when the first page was read (``top``, kept in the cursor with the stream's position):
        a chat or completion created later, or a chat renamed, changes no later page. Only
        an edit or deletion of a matching completion during the paging can move a chat.
        """
        query = fts_query(term)
        listing = f"search\0{term}"
        cursors = await self._cursor_signer()
        check_limit(limit)
        after = None if cursor is None else cursors.key(cursor, user_id, listing)
        if query is None:
            return ChatPage([], None)

        def read(conn: sqlite3.Connection) -> tuple[list[sqlite3.Row], tuple[int, int] | None]:
            if after is None:
                top = int(
                    conn.execute("SELECT coalesce(max(seq), 0) FROM completions").fetchone()[0]
                )
                position = top + 1
            else:
                top, position = int(after[0]), after[1]
            found = _search_stream(conn, user_id, query, top, position, limit + 1)
            rows = [_chat_row(conn, user_id, chat_id) for _, chat_id in found[:limit]]
            following = (top, found[limit - 1][0]) if len(found) > limit else None
            return rows, following

        rows, following = await self._read(read)
        chats = [chat_session(row) for row in rows]
        if following is None:
            return ChatPage(chats, None)
        top, position = following
        return ChatPage(chats, cursors.make(user_id, listing, str(top), position))

    async def list_deep_research_completions(self, user_id: str) -> list[ParsedCompletion]:
        """The user's completions whose metadata has a "deep-researcher" entry, newest first."""
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT * FROM completions WHERE user_id = ?"
                """ AND json_type(metadata, '$."deep-researcher"') IS NOT NULL"""
                " ORDER BY created_at DESC, seq DESC",
                (user_id,),
            ).fetchall()
        )
        return [_parsed_completion(row) for row in rows]

    # --- deep-research jobs ---

    async def create_job(
        self,
        user_id: str,
        *,
        request: dict[str, Any],
        completion_id: str | None = None,
        miners: str | None = None,
        search_filters: dict[str, Any] | None = None,
    ) -> Job:
        """A pending job for ``request``, tied to one of the user's completions if given;
        ``miners`` names the miners it needs (None: the engine's); ``search_filters`` what
        its searches may return."""
        request_json = json_object(request, "request")
        filters_json = None if search_filters is None else json.dumps(search_filters)
        if completion_id is not None:
            completion_id = check_uuid(completion_id, "completion id")
        job_id = new_id()

        def write(conn: sqlite3.Connection) -> Job:
            if completion_id is not None:
                _completion_row(conn, user_id, completion_id)
            now = timestamp()
            conn.execute(
                "INSERT INTO jobs (id, user_id, status, request, completion_id, miners,"
                " search_filters, created_at, updated_at)"
                " VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                (job_id, user_id, request_json, completion_id, miners, filters_json, now, now),
            )
            return _job(conn, _job_row(conn, job_id, user_id))

        return await self._write(write)

    async def get_job(self, user_id: str, job_id: str, *, after_seq: int = 0) -> Job:
        """The job with its chunks after ``after_seq`` (all of them by default), in order."""
        job_id = check_uuid(job_id, "job id")
        return await self._read(
            lambda conn: _job(conn, _job_row(conn, job_id, user_id), after_seq=after_seq),
            inline=True,
        )

    async def append_chunk(self, job_id: str, chunk: str, *, attempt: int | None = None) -> int:
        """Add a chunk to a job's result; its seq_id, one more than the last (1 for the first).

        A finished job (completed, failed, cancelled) takes no more chunks, nor one whose
        lease ``attempt`` has passed (see Store): failed_precondition.
        """
        job_id = check_uuid(job_id, "job id")

        def write(conn: sqlite3.Connection) -> int:
            job = _job_row(conn, job_id)
            check_lease(job, attempt, "it takes no more chunks")
            return _append_chunk(conn, job, chunk)

        seq_id = await self._write(write, small=_small(chunk))
        self._signals.fire(job_id)
        return seq_id

    async def set_job_status(
        self,
        job_id: str,
        status: JobStatus,
        *,
        error: str | None = None,
        attempt: int | None = None,
    ) -> Job:
        """Move a job to ``status`` with ``error`` (None clears it); returns it with its chunks.

        A finished job stays as it is: setting its own status again is a no-op, any other
        status is failed_precondition (so a late "completed" cannot undo a "cancelled").
        With ``attempt``, the job must still run under that lease (see Store).
        """
        job_id = check_uuid(job_id, "job id")
        check_statuses([status])

        def write(conn: sqlite3.Connection) -> Job:
            job = _job_row(conn, job_id)
            if has_status_already(job, status, attempt):
                return _job(conn, job)
            conn.execute(
                "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                (status, error, timestamp(), job_id),
            )
            return _job(conn, _job_row(conn, job_id))

        job = await self._write(write)  # not small: it returns every chunk
        self._signals.fire(job_id)
        return job

    def job_news(
        self, job_id: str
    ) -> contextlib.AbstractAsyncContextManager[Callable[[float], Awaitable[None]]]:
        """A job's news (see ``Store``): at once for a change made through this store; one
        made by another process on the same file is seen when ``wait`` times out."""
        return self._signals.watch(job_id)

    async def list_jobs_by_status(self, statuses: list[JobStatus]) -> list[Job]:
        """Every user's jobs in one of ``statuses``, oldest first (to resume after a restart)."""
        check_statuses(statuses)
        wanted = sorted(set(statuses))
        if not wanted:
            return []
        marks = ", ".join("?" * len(wanted))

        def read(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at, seq", wanted
            ).fetchall()
            return [_job(conn, row) for row in rows]

        return await self._read(read)

    async def claim_next_job(self, miners: Collection[str] = ()) -> Job | None:
        """A pending job that runs on the engine's miners or on one of the sets named in
        ``miners``, now running; None when none waits.

        Fair across users: the job of the user with the fewest jobs running, then of the one
        whose last job started longest ago (never first), then the oldest. So one user's 30
        queued jobs take turns with another user's one instead of holding it back.

        The claim is one transaction under the write lock, so two runners (in one process or
        in several sharing the file) never claim the same job.
        """
        names = sorted(set(miners))
        find = (
            "SELECT id FROM jobs AS job WHERE status = 'pending' AND (miners IS NULL"
            f" OR miners IN ({', '.join('?' * len(names))})) ORDER BY"
            " (SELECT count(*) FROM jobs WHERE user_id = job.user_id AND status = 'running'),"
            " coalesce((SELECT max(started_at) FROM jobs WHERE user_id = job.user_id), ''),"
            " created_at, seq LIMIT 1"
        )
        # Read first: an idle runner polls, and a read does not take the write lock.
        if await self._read(lambda conn: conn.execute(find, names).fetchone()) is None:
            return None

        def write(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(find, names).fetchone()
            if row is None:
                return None
            now = timestamp()
            conn.execute(
                "UPDATE jobs SET status = 'running', error = NULL, updated_at = ?,"
                " started_at = ?, attempt = attempt + 1 WHERE id = ?",
                (now, now, row["id"]),
            )
            return _job(conn, _job_row(conn, row["id"]))

        job = await self._write(write)
        if job is not None:
            self._signals.fire(job.id)
        return job

    async def touch_jobs(self, leases: Mapping[str, int]) -> set[str]:
        """The heartbeat of a runner's jobs (job id -> the attempt it runs): bumps the
        updated_at of those it still holds; returns the ids of those it does not (finished,
        cancelled, gone, or taken over by another runner): it should stop them."""
        ids = unique_uuids(list(leases), "job id")
        if not ids:
            return set()

        def write(conn: sqlite3.Connection) -> set[str]:
            now, lost = timestamp(), set()
            for job_id in ids:
                held = conn.execute(
                    "UPDATE jobs SET updated_at = ? WHERE id = ? AND status = 'running'"
                    " AND attempt = ?",
                    (now, job_id, leases[job_id]),
                ).rowcount
                if not held:
                    lost.add(job_id)
            return lost

        return await self._write(write)

    async def take_over_stale_jobs(
        self, before: datetime, *, chunk: str, max_takeovers: int, error: str
    ) -> list[Job]:
        """The running jobs whose heartbeat stopped before ``before`` (their runner is gone):
        each goes back to the queue, pending, with ``chunk`` added to its result, unless it
        was taken over ``max_takeovers`` times already: then it fails with ``error``. Returns
        them as they are now. Each job in one transaction, so of several runners sweeping at
        once, one takes it."""
        cutoff = format_time(before)
        find = "SELECT id FROM jobs WHERE status = 'running' AND updated_at < ?"
        # Read first: every runner sweeps at each heartbeat, and mostly nothing is stale.
        if not await self._read(lambda conn: conn.execute(find, (cutoff,)).fetchall()):
            return []

        def write(conn: sqlite3.Connection) -> list[Job]:
            now, taken = timestamp(), []
            for row in conn.execute(find, (cutoff,)).fetchall():
                job = _job_row(conn, row["id"])
                if job["takeovers"] >= max_takeovers:
                    conn.execute(
                        "UPDATE jobs SET status = 'failed', error = ?, updated_at = ? WHERE id = ?",
                        (error, now, job["id"]),
                    )
                else:
                    _append_chunk(conn, job, chunk)
                    conn.execute(
                        "UPDATE jobs SET status = 'pending', takeovers = takeovers + 1,"
                        " updated_at = ? WHERE id = ?",
                        (now, job["id"]),
                    )
                taken.append(_job(conn, _job_row(conn, job["id"])))
            return taken

        return self._signals.fire_each(await self._write(write))

    async def fail_waiting_jobs(
        self, before: datetime, error: str, *, held: Collection[str] = ()
    ) -> list[Job]:
        """Mark failed, with ``error``, the pending jobs on a named set of miners (a
        session's) not in ``held`` that have waited since before ``before``: nobody will run
        them (their session did not come back after a restart); returns them, failed."""
        cutoff = format_time(before)
        names = sorted(set(held))
        find = (
            "SELECT id FROM jobs WHERE status = 'pending' AND miners IS NOT NULL"
            f" AND miners NOT IN ({', '.join('?' * len(names))}) AND updated_at < ?"
        )
        params = (*names, cutoff)
        if not await self._read(lambda conn: conn.execute(find, params).fetchall()):
            return []

        def write(conn: sqlite3.Connection) -> list[Job]:
            now, failed = timestamp(), []
            for row in conn.execute(find, params).fetchall():
                conn.execute(
                    "UPDATE jobs SET status = 'failed', error = ?, updated_at = ? WHERE id = ?",
                    (error, now, row["id"]),
                )
                failed.append(_job(conn, _job_row(conn, row["id"])))
            return failed

        return self._signals.fire_each(await self._write(write))

    async def sync_job_completions(
        self, user_id: str, job_id: str, status: JobStatus, *, completion_text: str | None = None
    ) -> int:
        """Bring the user's completions linked to the job (``metadata."deep-researcher".jobId``)
        to ``status`` if that is still the job's status, keeping the rest of their metadata:
        the entry's ``status``; for a failed job, ``error_message`` is the job's error; for a
        completed job, ``completion_text`` when given. Only completions whose entry has
        another status change; returns how many did.

        A caller whose view of the job is out of date changes nothing (the job's status is
        read in the same transaction): the one that knows the new status syncs it.
        """
        job_id = check_uuid(job_id, "job id")
        check_statuses([status])
        where = (
            " WHERE user_id = ?"
            """ AND json_extract(metadata, '$."deep-researcher".jobId') = ?"""
            """ AND json_extract(metadata, '$."deep-researcher".status') IS NOT ?"""
        )
        keys = (user_id, job_id, status)

        def outdated(conn: sqlite3.Connection) -> tuple[sqlite3.Row, int]:
            job = _job_row(conn, job_id, user_id)
            if job["status"] != status:
                return job, 0
            found = conn.execute("SELECT count(*) FROM completions" + where, keys).fetchone()
            return job, int(found[0])

        # Read first: callers sync on every poll of a job, and most of the time nothing changes.
        if (await self._read(outdated))[1] == 0:
            return 0

        def write(conn: sqlite3.Connection) -> int:
            job, count = outdated(conn)
            if count == 0:
                return 0
            changes = {"metadata": """json_set(metadata, '$."deep-researcher".status', ?)"""}
            values: list[str | None] = [status]
            if status == "failed":
                changes["error_message"] = "?"
                values.append(job["error"] or "")
            if status == "completed" and completion_text is not None:
                changes.update(completion_text="?", completed_at="?")
                values += [completion_text, timestamp()]
            # Column names and expressions are the fixed ones above, never the caller's.
            assignments = ", ".join(f"{column} = {value}" for column, value in changes.items())
            updated: int = conn.execute(
                f"UPDATE completions SET {assignments}" + where, (*values, *keys)
            ).rowcount
            return updated

        return await self._write(write)

    # --- replies to writes with an idempotency key ---

    async def claim_reply(
        self, user_id: str, key: str, method: str, request_digest: str
    ) -> StoredReply | None:
        """What is kept for the user's ``key`` (the last 24 h): its reply, or a first try
        still being answered (``reply`` None). None when there is nothing: the key is now
        claimed for this request, whose caller does the write and then ``remember_reply``
        (or ``forget_reply`` if it failed). One transaction: of two tries at once, in one
        process or several, one claims and the other sees the claim."""
        cutoff = ago(REPLY_SECONDS)

        def write(conn: sqlite3.Connection) -> StoredReply | None:
            conn.execute("DELETE FROM replies WHERE created_at < ?", (cutoff,))
            row = conn.execute(
                "SELECT method, request_digest, reply, created_at FROM replies"
                " WHERE user_id = ? AND key = ?",
                (user_id, key),
            ).fetchone()
            if row is not None:
                return stored_reply(row)
            conn.execute(
                "INSERT INTO replies (user_id, key, method, request_digest, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (user_id, key, method, request_digest, timestamp()),
            )
            return None

        return await self._write(write)

    async def remember_reply(self, user_id: str, key: str, reply: bytes) -> None:
        """Keep ``reply`` for the user's claimed ``key`` (24 h from the claim)."""
        await self._write(
            lambda conn: conn.execute(
                "UPDATE replies SET reply = ? WHERE user_id = ? AND key = ? AND reply IS NULL",
                (reply, user_id, key),
            )
        )

    async def forget_reply(self, user_id: str, key: str) -> None:
        """Let go of the user's claimed ``key`` whose write failed: a retry does it anew."""
        await self._write(
            lambda conn: conn.execute(
                "DELETE FROM replies WHERE user_id = ? AND key = ? AND reply IS NULL",
                (user_id, key),
            )
        )

    # --- fetched web pages ---

    async def get_page(self, url: str, max_age: float) -> CachedPage | None:
        """The page read from ``url`` within the last ``max_age`` seconds, if kept."""
        cutoff = ago(max_age)
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT final_url, content, fetched_at FROM pages"
                " WHERE url = ? AND fetched_at >= ?",
                (url, cutoff),
            ).fetchone()
        )
        return None if row is None else cached_page(row)

    async def put_page(
        self, url: str, final_url: str, content: str, *, max_age: float, keep: int
    ) -> None:
        """Keep the page read from ``url``; drop the pages older than ``max_age`` seconds and
        the oldest beyond the newest ``keep``."""
        cutoff = ago(max_age)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO pages (url, final_url, content, fetched_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (url) DO UPDATE SET final_url = excluded.final_url,"
                " content = excluded.content, fetched_at = excluded.fetched_at",
                (url, final_url, content, timestamp()),
            )
            conn.execute("DELETE FROM pages WHERE fetched_at < ?", (cutoff,))
            conn.execute(
                "DELETE FROM pages WHERE url IN"
                " (SELECT url FROM pages ORDER BY fetched_at DESC LIMIT -1 OFFSET ?)",
                (max(keep, 1),),
            )

        await self._write(write)

    # --- maintenance ---

    async def integrity_check(self) -> str:
        """``"ok"``, or the problems found, one a line: SQLite's ``PRAGMA integrity_check``,
        and whether the full-text index matches the completions."""

        def check(conn: sqlite3.Connection) -> str:
            problems = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
            problems = [] if problems == ["ok"] else problems
            try:
                # rank = 1: compare the index with the completions table, not only itself.
                conn.execute(
                    "INSERT INTO completions_fts (completions_fts, rank)"
                    " VALUES ('integrity-check', 1)"
                )
            except sqlite3.DatabaseError as e:
                problems.append(f"the full-text index does not match the completions ({e})")
            return "\n".join(problems) or "ok"

        # The full-text check is written as an INSERT, so it runs in a write transaction.
        return await self._write(check)


# --- full-text queries ----------------------------------------------------------------------

_SEARCHABLE = re.compile(r"[^\W_]")  # a word with no letter or digit has no token to match


def fts_query(term: str) -> str | None:
    """An FTS5 query that matches every word of ``term`` as plain text, the last as a prefix.

    Each word is quoted, so FTS5 syntax (AND, OR, NEAR, *, ^, column:, quotes) is searched as
    words, and the index's tokenizer splits and folds the word exactly as it did the stored
    text. None when no word is searchable.
    """
    # FTS5 stops reading a query at NUL; lone surrogates cannot be encoded for SQLite.
    term = term.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")
    words = [word for word in term.split() if _SEARCHABLE.search(word)]
    if not words:
        return None
    phrases = ['"' + word.replace('"', '""') + '"' for word in words]
    phrases[-1] += "*"
    return " ".join(phrases)


def _search_stream(
    conn: sqlite3.Connection, user_id: str, query: str, top: int, position: int, wanted: int
) -> list[tuple[int, str]]:
    """Up to ``wanted`` (completion seq, chat id) of the user's chats, each at its newest
    completion matching ``query`` with seq <= ``top``, from below ``position`` down.

    A chat met in the stream was already given on an earlier page if one of its completions
    in [position, top] matches: those few are checked with one range query on the index per
    batch, never one full-text query per chat (a prefix query costs its whole match list)."""
    found: list[tuple[int, str]] = []
    met: set[str] = set()
    batch: list[tuple[int, str, list[int]]] = []  # (seq, chat, its completions to check)

    def settle() -> None:
        checks = [seq for _, _, later in batch for seq in later]
        matched: set[int] = set()
        if checks:
            matched = {
                row[0]
                for row in conn.execute(
                    "SELECT rowid FROM completions_fts WHERE completions_fts MATCH ?"
                    " AND rowid >= ? AND rowid <= ?",
                    (query, min(checks), max(checks)),
                )
            }
        found.extend((seq, chat) for seq, chat, later in batch if matched.isdisjoint(later))
        batch.clear()

    for seq, chat_id in conn.execute(SEARCH_STREAM_SQL, (query, min(position, top + 1), user_id)):
        if chat_id in met:
            continue  # an older match of a chat already met on this page
        met.add(chat_id)
        later = [
            row[0]
            for row in conn.execute(
                "SELECT seq FROM completions WHERE chat_id = ? AND user_id = ?"
                " AND seq >= ? AND seq <= ?",
                (chat_id, user_id, position, top),
            )
        ]
        batch.append((seq, chat_id, later))
        if len(found) + len(batch) >= wanted:
            settle()
            if len(found) >= wanted:
                return found[:wanted]
    settle()
    return found[:wanted]


_MOVED = object()  # a read or write that did not run inline
_TOO_LONG = object()  # a write interrupted inline after INLINE_STEPS, rolled back
_WAITS = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # another event loop (trio): anyio's threads instead
        return False
    return True


# --- helpers (run in the worker thread, inside a transaction) --------------------------------


def _in_transaction(
    conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], begin: str
) -> T:
    with _transaction(conn, begin):
        return work(conn)


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[None]:
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _small(*texts: str) -> bool:
    """Whether a write of these texts is small enough to run inline (see INLINE_WRITE_CHARS)."""
    return sum(map(len, texts)) <= INLINE_WRITE_CHARS


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    # One migration per transaction; under the write lock, so when two processes open a new
    # file at once, one applies it and the other then sees the new version and skips it.
    while True:
        with _transaction(conn, "BEGIN IMMEDIATE"):
            version: int = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise ApexError(
                    Code.FAILED_PRECONDITION,
                    f"{path} has schema version {version}, newer than this apex-mcp knows "
                    f"({len(MIGRATIONS)}): upgrade apex-mcp or use another database file",
                )
            if version == len(MIGRATIONS):
                return
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")


def _statements(script: str) -> Iterator[str]:
    # conn.executescript() would COMMIT first, so run the script statement by statement.
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        raise ValueError(f"a migration ends with an incomplete statement: {statement[:80]!r}")


def _chat_row(conn: sqlite3.Connection, user_id: str, chat_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM chats WHERE id = ? AND user_id = ?", (chat_id, user_id)
    ).fetchone()
    if row is None:
        raise not_found("chat", chat_id)
    return row


def _completion_row(conn: sqlite3.Connection, user_id: str, completion_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM completions WHERE id = ? AND user_id = ?", (completion_id, user_id)
    ).fetchone()
    if row is None:
        raise not_found("completion", completion_id)
    return row


def _job_row(conn: sqlite3.Connection, job_id: str, user_id: str | None = None) -> sqlite3.Row:
    # Without user_id: the engine's runner, which may touch any user's job.
    sql, params = "SELECT * FROM jobs WHERE id = ?", [job_id]
    if user_id is not None:
        sql, params = sql + " AND user_id = ?", [job_id, user_id]
    row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
    if row is None:
        raise not_found("job", job_id)
    return row


def _append_chunk(conn: sqlite3.Connection, job: sqlite3.Row, chunk: str) -> int:
    now = timestamp()
    # Safe without a race: the IMMEDIATE transaction holds the database's write lock.
    seq_id: int = conn.execute(
        "SELECT coalesce(max(seq_id), 0) + 1 FROM job_chunks WHERE job_id = ?", (job["id"],)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO job_chunks (job_id, user_id, seq_id, chunk, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (job["id"], job["user_id"], seq_id, chunk, now),
    )
    conn.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (now, job["id"]))
    return seq_id


def _job(conn: sqlite3.Connection, row: sqlite3.Row, *, after_seq: int = 0) -> Job:
    chunks = conn.execute(
        "SELECT seq_id, chunk FROM job_chunks WHERE job_id = ? AND seq_id > ? ORDER BY seq_id",
        (row["id"], after_seq),
    ).fetchall()
    filters = row["search_filters"]
    return make_job(
        row,
        [DeepResearcherResultChunk(seq_id=c["seq_id"], chunk=c["chunk"]) for c in chunks],
        request=json.loads(row["request"]),
        search_filters=None if filters is None else json.loads(filters),
    )


def _touch_chats(conn: sqlite3.Connection, user_id: str, chat_ids: list[str]) -> None:
    # A chat's updated_at is its last activity: list and search order go by it.
    now = timestamp()
    for chat_id in chat_ids:
        conn.execute(
            "UPDATE chats SET updated_at = ? WHERE id = ? AND user_id = ?", (now, chat_id, user_id)
        )


def _delete_each(conn: sqlite3.Connection, sql: str, user_id: str, ids: list[str]) -> int:
    # One statement per id: no limit on how many ids a call may pass.
    return sum(conn.execute(sql, (row_id, user_id)).rowcount for row_id in ids)


# --- conversions: the shared ones, with the JSON columns (stored as text) decoded ----------


def _stored_completion(row: sqlite3.Row) -> StoredChatCompletion:
    return stored_completion(row, json.loads(row["metadata"]))


def _parsed_completion(row: sqlite3.Row) -> ParsedCompletion:
    return parsed_completion(row, json.loads(row["metadata"]))


@contextmanager
def _apex_errors(path: Path) -> Iterator[None]:
    """SQLite's errors, and text it cannot take, made ``ApexError``s."""
    try:
        yield
    except sqlite3.Error as e:
        raise _apex_error(e, path) from e
    except UnicodeEncodeError:
        raise not_unicode() from None


def _apex_error(error: sqlite3.Error, path: Path) -> ApexError:
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return ApexError(
            Code.UNAVAILABLE,
            f"the database {path} stayed locked by another process for {BUSY_TIMEOUT:g} s",
        )
    if code == sqlite3.SQLITE_FULL:
        return ApexError(Code.RESOURCE_EXHAUSTED, f"the disk holding {path} is full")
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return ApexError(Code.DATA_LOSS, f"{path} is damaged or not an apex-mcp database: {error}")
    return ApexError(Code.INTERNAL, f"database error in {path}: {error}")


def _enable_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL, waiting out another process doing the same to a brand-new file: SQLite
    answers that race with an immediate "database is locked", not with its busy handler."""
    give_up = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > give_up:
                raise
            time.sleep(0.01)
