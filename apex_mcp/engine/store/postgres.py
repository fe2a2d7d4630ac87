"""PostgresStore: the engine's ``Store`` in a PostgreSQL database, shared by several replicas.

- psycopg 3 with its async connection pool (``psycopg_pool``): a maintained driver that is
  fully typed (``mypy --strict`` checks the calls), speaks asyncio natively and ships binary
  wheels. Imported only here: the SQLite path (stdio start-up) never loads it.
- Reads run in ``REPEATABLE READ, READ ONLY`` transactions (one snapshot for their several
  SELECTs, and they never fail on a conflict); writes in ``READ COMMITTED`` with the rows they
  depend on locked (``FOR UPDATE``; job claims ``FOR UPDATE SKIP LOCKED``, so runners in
  several replicas never take one job twice nor wait for each other). A write that loses a
  deadlock or a serialization conflict (SQLSTATE 40P01, 40001) is retried here, a few times,
  so it never reaches a client as an error.
- The schema is versioned in ``apex_schema``: at open, the migrations run in one transaction
  holding ``pg_advisory_xact_lock(MIGRATION_LOCK)``, so when several replicas start at once,
  one migrates and the others wait, then find the schema up to date.
- Full-text search: a ``tsvector`` per column (prompt, text) with a GIN index on the two,
  queried with a ``tsquery`` of phrases, the last word as a prefix: the semantics of the
  SQLite store's FTS5 query. The words are split and folded here, in Python, as FTS5's
  ``unicode61 remove_diacritics 2`` tokenizer does (letters and digits; case and diacritics
  folded), so the results do not depend on the server's locale or on an extension such as
  unaccent that a managed database may not allow. pg_trgm was not chosen: it matches
  substrings by similarity, not words and prefixes, and cannot use its index for short terms.
- News of jobs crosses replicas: each write to a job sends ``NOTIFY apex_jobs, '<job id>'``
  in its transaction (delivered at commit), and each store LISTENs on a connection of its
  own, so a client following a job on one replica hears the steps another replica runs at
  once. While that connection is down (it reconnects), watchers look every poll instead.
- Timestamps are the SQLite store's fixed-width UTC text (``COLLATE "C"``: they sort as
  text), so both stores give the same values and cursors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import psycopg
import psycopg.errors
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from apex_mcp._dburl import redacted_url, url_passwords
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
Conn = psycopg.AsyncConnection[DictRow]

POOL_SIZE = 10  # connections per store (per replica); a call waits for a free one
CONNECT_TIMEOUT = 10  # seconds to connect at open
NEWS_CHANNEL = "apex_jobs"  # NOTIFY channel of job changes; the payload is the job id
# How long a watcher of a job waits while LISTEN hears every change: a last resort only.
HEARD_WAIT = 10.0
RELISTEN_SECONDS = 1.0  # before connecting again when the LISTEN connection is lost

log = logging.getLogger(__name__)
POOL_TIMEOUT = 30.0  # seconds a call waits for a connection before it is unavailable
WRITE_ATTEMPTS = 8  # tries of a write that loses a deadlock or a serialization conflict
# pg_advisory_xact_lock key held while migrating: b"apexmcp1" as a bigint.
MIGRATION_LOCK = int.from_bytes(b"apexmcp1", "big")
MAX_LEXEME_BYTES = 2047  # PostgreSQL's limit on one word of a tsvector
MAX_POSITIONS = 256  # positions PostgreSQL keeps per word of a tsvector

MIGRATIONS: list[str] = [
    # 1: the SQLite store's schema at its version 5, in one step.
    """
    CREATE TABLE chats (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        user_id text NOT NULL,
        title text NOT NULL,
        chat_type text NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        updated_at text COLLATE "C" NOT NULL,
        UNIQUE (id, user_id)
    );
    CREATE INDEX chats_by_user ON chats (user_id, created_at, seq);
    CREATE INDEX chats_by_user_type ON chats (user_id, chat_type, created_at, seq);

    CREATE TABLE completions (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        chat_id text NOT NULL,
        user_id text NOT NULL,
        completion_type text NOT NULL,
        user_prompt_text text NOT NULL,
        completion_text text NOT NULL DEFAULT '',
        metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
        error_message text NOT NULL DEFAULT '',
        created_at text COLLATE "C" NOT NULL,
        completed_at text COLLATE "C",
        prompt_words tsvector NOT NULL DEFAULT '',
        text_words tsvector NOT NULL DEFAULT '',
        UNIQUE (id, user_id),
        FOREIGN KEY (chat_id, user_id) REFERENCES chats (id, user_id) ON DELETE CASCADE
    );
    CREATE INDEX completions_by_chat ON completions (chat_id, user_id, created_at, seq);
    CREATE INDEX completions_by_user ON completions (user_id, created_at, seq);
    CREATE INDEX completions_words ON completions USING gin ((prompt_words || text_words));

    CREATE TABLE jobs (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        user_id text NOT NULL,
        status text NOT NULL
            CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
        request jsonb NOT NULL CHECK (jsonb_typeof(request) = 'object'),
        completion_id text REFERENCES completions (id) ON DELETE SET NULL,
        miners text,
        error text,
        created_at text COLLATE "C" NOT NULL,
        updated_at text COLLATE "C" NOT NULL,
        started_at text COLLATE "C",
        UNIQUE (id, user_id)
    );
    CREATE INDEX jobs_by_status ON jobs (status, created_at);
    CREATE INDEX jobs_by_completion ON jobs (completion_id);
    CREATE INDEX jobs_by_user_status ON jobs (user_id, status);
    CREATE INDEX jobs_by_user_started ON jobs (user_id, started_at);

    CREATE TABLE job_chunks (
        job_id text NOT NULL,
        user_id text NOT NULL,
        seq_id integer NOT NULL CHECK (seq_id > 0),
        chunk text NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        PRIMARY KEY (job_id, seq_id),
        FOREIGN KEY (job_id, user_id) REFERENCES jobs (id, user_id) ON DELETE CASCADE
    );

    CREATE TABLE replies (
        user_id text NOT NULL,
        key text NOT NULL,
        method text NOT NULL,
        request_digest text NOT NULL,
        reply bytea,
        created_at text COLLATE "C" NOT NULL,
        PRIMARY KEY (user_id, key)
    );
    CREATE INDEX replies_by_age ON replies (created_at);

    CREATE TABLE secrets (
        name text PRIMARY KEY,
        value bytea NOT NULL
    );
    """,
    # 2: a job's lease, as the SQLite store's 6.
    """
    ALTER TABLE jobs ADD COLUMN attempt integer NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN takeovers integer NOT NULL DEFAULT 0;
    """,
    # 3: web pages read and extracted, as the SQLite store's 7.
    """
    CREATE TABLE pages (
        url text PRIMARY KEY,
        final_url text NOT NULL,
        content text NOT NULL,
        fetched_at text COLLATE "C" NOT NULL
    );
    CREATE INDEX pages_by_age ON pages (fetched_at);
    """,
    # 4: what a job's searches may return, as the SQLite store's 8.
    """
    ALTER TABLE jobs ADD COLUMN search_filters jsonb;
    """,
]

# The tables, children first: what a test empties between cases.
TABLES = ("job_chunks", "jobs", "replies", "completions", "chats", "pages")

CHAT_COLUMNS = "chats.seq, chats.id, chats.user_id, chats.title, chats.chat_type," + (
    " chats.created_at, chats.updated_at"
)
# Every column of a completion but its words (which only the search reads).
COMPLETION_COLUMNS = (
    "seq, id, chat_id, user_id, completion_type, user_prompt_text, completion_text, metadata,"
    " error_message, created_at, completed_at"
)
WORDS = "(completions.prompt_words || completions.text_words)"  # what the GIN index holds

# A page of chats, newest first, after the cursor's (created_at, seq): see the SQLite store's
# _AFTER for why this key. One backward range of chats_by_user(_type).
_AFTER = " AND (chats.created_at, chats.seq) < (%s, %s)"
_NEWEST_FIRST = " ORDER BY chats.created_at DESC, chats.seq DESC LIMIT %s"
LIST_PAGE_SQL = f"SELECT {CHAT_COLUMNS} FROM chats WHERE chats.user_id = %s"

# Parameters: the user, the tsquery, the user.
SEARCH_SQL = (
    f"SELECT chats.id FROM chats WHERE chats.user_id = %s AND chats.id IN ("
    f" SELECT completions.chat_id FROM completions WHERE {WORDS} @@ %s::tsquery"
    " AND completions.user_id = %s)"
    " ORDER BY chats.updated_at DESC, chats.seq DESC"
)

# A page of the search (see search_chats_page): the user's chats, each at its newest matching
# completion no newer than ``top``, those whose newest match is below ``position`` (the chats
# at or above it were on earlier pages), newest match first. The matches are found in the
# GIN index; only the page's chats are then read (a completion's chat is always there, the
# user's: the foreign key). Parameters: the tsquery, the user, top, position, the limit, the
# user.
SEARCH_PAGE_SQL = (
    f"SELECT {CHAT_COLUMNS}, found.at FROM ("
    " SELECT completions.chat_id, max(completions.seq) AS at FROM completions"
    f" WHERE {WORDS} @@ %s::tsquery AND completions.user_id = %s AND completions.seq <= %s"
    " GROUP BY completions.chat_id HAVING max(completions.seq) < %s"
    " ORDER BY at DESC LIMIT %s) AS found"
    " JOIN chats ON chats.id = found.chat_id AND chats.user_id = %s"
    " ORDER BY found.at DESC"
)

_RETRIED = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)


class PostgresStore(OpenClose):
    """The ``Store`` in a PostgreSQL database. ``await open()`` before use (or ``async with``)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.display = redacted_url(url)
        self._passwords = url_passwords(url)
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._cursors: Cursors | None = None
        self._signals = JobSignals()
        # Runs _listen while the store is open. An asyncio task of its own, not in a task
        # group: the store may be closed by another task than the one that opened it (and
        # psycopg's async connections are asyncio's anyway).
        self._listener: asyncio.Task[None] | None = None
        self._listening = False

    def __repr__(self) -> str:
        return f"PostgresStore({self.display!r})"

    # --- lifecycle ---

    async def open(self) -> None:
        """Connect and bring the schema up to date (once, whichever replica comes first)."""
        if self._pool is not None:
            return
        try:
            # One connection first: a wrong host, database or password is told at once (a
            # pool would keep trying until its timeout), and it brings the schema up to date.
            conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT
            )
            async with conn:
                await _migrate(conn, self.display)
        except psycopg.Error as e:
            raise self._error(e) from None
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=POOL_TIMEOUT,
            open=False,
            # A connection the server dropped (a restart) is replaced, not handed to a call.
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "row_factory": dict_row},
            connection_class=psycopg.AsyncConnection[DictRow],
            name="apex-store",
        )
        try:
            await pool.open(wait=True, timeout=POOL_TIMEOUT)
        except BaseException as e:
            await pool.close()
            if isinstance(e, PoolTimeout):
                raise self._unreachable() from None
            raise
        self._pool = pool
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
                await listener
        pool, self._pool = self._pool, None
        if pool is not None:
            with anyio.CancelScope(shield=True):
                await pool.close()

    async def _listen(self) -> None:
        """Hear the jobs' news from every replica (see the module's notes), for good."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                )
                async with conn:
                    await conn.execute(f"LISTEN {NEWS_CHANNEL}")
                    self._listening = True
                    self._signals.fire_all()  # what came while not listening was not heard
                    async for note in conn.notifies():
                        self._signals.fire(note.payload)
            except psycopg.Error as e:
                log.warning("not hearing job news from other replicas: %s", self._error(e))
            except Exception:  # never the end of listening: try again
                log.exception("not hearing job news from other replicas")
            finally:
                self._listening = False
            self._signals.fire_all()
            await anyio.sleep(RELISTEN_SECONDS)

    @property
    def hears_other_replicas(self) -> bool:
        """Whether the news of jobs changed by other replicas reaches this store now."""
        return self._listening

    @asynccontextmanager
    async def job_news(self, job_id: str) -> AsyncIterator[Callable[[float], Awaitable[None]]]:
        """A job's news (see ``Store``), from every replica: while LISTEN hears them, a
        watcher waits for them rather than looking every ``poll_seconds``."""
        async with self._signals.watch(job_id) as wait:

            async def wait_for_news(poll_seconds: float) -> None:
                await wait(max(poll_seconds, HEARD_WAIT) if self._listening else poll_seconds)

            yield wait_for_news

    def _error(self, error: psycopg.Error) -> ApexError:
        made = _apex_error(error, self.display)
        message = made.message
        # libpq may quote a piece of a malformed URL back: never the password.
        for secret in {form for word in self._passwords for form in (word, quote(word))}:
            message = message.replace(secret, "***")
        return ApexError(made.code, message)

    def _unreachable(self) -> ApexError:
        return ApexError(
            Code.UNAVAILABLE,
            f"cannot connect to the database {self.display} within {POOL_TIMEOUT:g} s",
        )

    async def _transaction(self, work: Callable[[Conn], Awaitable[T]], begin: str) -> T:
        pool = self._pool
        if pool is None:
            raise RuntimeError("the store is not open: await store.open() first")
        conn = await pool.getconn()  # waiting for a connection may be cancelled
        try:
            # Once begun, never cut off half-way by a cancel: the caller waits for the end of
            # the transaction (as the SQLite store waits for its thread), and the connection
            # goes back to the pool clean instead of being closed mid-statement.
            with anyio.CancelScope(shield=True):
                await conn.execute(begin)
                try:
                    done = await work(conn)
                except BaseException:
                    if not conn.closed:
                        # A broken connection cannot roll back: the pool replaces it.
                        with contextlib.suppress(psycopg.Error):
                            await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
        finally:
            with anyio.CancelScope(shield=True):
                await pool.putconn(conn)
        return done

    async def _read(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        # One snapshot for the read's statements; a read-only one never fails on a conflict.
        return await self._run(work, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 1)

    async def _write(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        return await self._run(work, "BEGIN", WRITE_ATTEMPTS)

    async def _run(self, work: Callable[[Conn], Awaitable[T]], begin: str, attempts: int) -> T:
        for attempt in range(1, attempts + 1):
            try:
                return await self._transaction(work, begin)
            except _RETRIED as e:
                if attempt == attempts:
                    raise ApexError(
                        Code.UNAVAILABLE,
                        f"the database {self.display} is too busy: a write kept conflicting"
                        f" with others ({e.sqlstate})",
                    ) from None
                # Back off a random while, longer each time, so the conflicting writes part.
                await anyio.sleep(random.uniform(0, 0.005 * 2**attempt))
            except PoolTimeout:
                raise self._unreachable() from None
            except psycopg.Error as e:
                raise self._error(e) from None
            except UnicodeEncodeError:
                raise not_unicode() from None
        raise AssertionError("unreachable")  # the loop returns or raises

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
        """A new chat with its first completion, in one transaction (see the SQLite store)."""
        chat_id, completion_id = new_id(), new_id()
        title = title_from(user_prompt) if title is None else title
        metadata_json = "{}" if metadata is None else json_object(metadata, "metadata")
        words = (tsvector(user_prompt), tsvector(completion_text, first=2))

        async def write(conn: Conn) -> str:
            now = timestamp()
            await conn.execute(
                "INSERT INTO chats (id, user_id, title, chat_type, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (chat_id, user_id, title, chat_type, now, now),
            )
            await conn.execute(
                "INSERT INTO completions (id, chat_id, user_id, completion_type,"
                " user_prompt_text, completion_text, metadata, created_at, completed_at,"
                " prompt_words, text_words)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s::tsvector, %s::tsvector)",
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
                    *words,
                ),
            )
            return now

        created = await self._write(write)
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
        words = tsvector(user_prompt)

        async def write(conn: Conn) -> str:
            now = timestamp()
            bumped = await conn.execute(
                "UPDATE chats SET updated_at = %s WHERE id = %s AND user_id = %s",
                (now, chat_id, user_id),
            )
            if bumped.rowcount == 0:
                raise not_found("chat", chat_id)
            await conn.execute(
                "INSERT INTO completions (id, chat_id, user_id, completion_type,"
                " user_prompt_text, created_at, prompt_words)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::tsvector)",
                (completion_id, chat_id, user_id, completion_type, user_prompt, now, words),
            )
            return now

        created = await self._write(write)
        return new_completion(completion_id, chat_id, created, user_prompt, completion_type)

    async def list_chats(self, user_id: str, chat_type: str | None = None) -> list[ChatSession]:
        """The user's chats, newest first; only those of ``chat_type`` if given (not empty)."""
        sql = LIST_PAGE_SQL
        params: tuple[str, ...] = (user_id,)
        if chat_type:
            sql += " AND chats.chat_type = %s"
            params += (chat_type,)
        sql += " ORDER BY chats.created_at DESC, chats.seq DESC"
        rows = await self._read(lambda conn: _all(conn, sql, params))
        return [chat_session(row) for row in rows]

    async def list_chats_page(
        self,
        user_id: str,
        *,
        chat_type: str | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> ChatPage:
        """A page of the user's chats, newest first (see the SQLite store's docstring)."""
        listing = f"chats\0{chat_type or ''}"
        sql, args = LIST_PAGE_SQL, [user_id]
        if chat_type:
            sql += " AND chats.chat_type = %s"
            args.append(chat_type)
        cursors = await self._cursor_signer()
        check_limit(limit)
        params: list[str | int] = [*args]
        if cursor is not None:
            sql += _AFTER
            params += cursors.key(cursor, user_id, listing)
        sql += _NEWEST_FIRST
        params.append(limit + 1)  # one more: whether there is a next page
        rows = await self._read(lambda conn: _all(conn, sql, params))
        return chat_page(
            rows,
            limit,
            lambda last: cursors.make(user_id, listing, last["created_at"], last["seq"]),
        )

    async def _cursor_signer(self) -> Cursors:
        if self._cursors is None:  # read once, when first needed
            row = await self._read(
                lambda conn: _one(conn, "SELECT value FROM secrets WHERE name = 'cursor'", ())
            )
            if row is None:
                raise ApexError(Code.DATA_LOSS, f"{self.display} lost its cursor key")
            self._cursors = Cursors(bytes(row["value"]))
        return self._cursors

    async def get_chat(self, user_id: str, chat_id: str) -> ChatSession:
        chat_id = check_uuid(chat_id, "chat id")
        return chat_session(await self._read(lambda conn: _chat_row(conn, user_id, chat_id)))

    async def list_completions(self, user_id: str, chat_id: str) -> list[StoredChatCompletion]:
        """The chat's completions, oldest first."""
        chat_id = check_uuid(chat_id, "chat id")

        async def read(conn: Conn) -> list[DictRow]:
            await _chat_row(conn, user_id, chat_id)
            return await _all(
                conn,
                f"SELECT {COMPLETION_COLUMNS} FROM completions WHERE chat_id = %s"
                " AND user_id = %s ORDER BY created_at, seq",
                (chat_id, user_id),
            )

        return [stored_completion(row, row["metadata"]) for row in await self._read(read)]

    async def get_completion(self, user_id: str, completion_id: str) -> StoredChatCompletion:
        completion_id = check_uuid(completion_id, "completion id")
        row = await self._read(lambda conn: _completion_row(conn, user_id, completion_id))
        return stored_completion(row, row["metadata"])

    async def update_chat(
        self, user_id: str, chat_id: str, *, title: str | None = None, chat_type: str | None = None
    ) -> ChatSession:
        """Change the title and/or chat type (None leaves it) and bump updated_at."""
        chat_id = check_uuid(chat_id, "chat id")
        if title is None and chat_type is None:
            return await self.get_chat(user_id, chat_id)

        async def write(conn: Conn) -> DictRow:
            row = await _one(
                conn,
                "UPDATE chats SET title = coalesce(%s, title),"
                " chat_type = coalesce(%s, chat_type), updated_at = %s"
                f" WHERE id = %s AND user_id = %s RETURNING {CHAT_COLUMNS}",
                (title, chat_type, timestamp(), chat_id, user_id),
            )
            if row is None:
                raise not_found("chat", chat_id)
            return row

        return chat_session(await self._write(write))

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
        # Column names and casts are these fixed ones, never the caller's.
        changes: dict[str, tuple[str, str]] = {}
        if completion_text is not None:
            changes["completion_text"] = ("%s", completion_text)
            changes["text_words"] = ("%s::tsvector", tsvector(completion_text, first=2))
        if user_prompt_text is not None:
            changes["user_prompt_text"] = ("%s", user_prompt_text)
            changes["prompt_words"] = ("%s::tsvector", tsvector(user_prompt_text))
        if metadata is not None:
            changes["metadata"] = ("%s::jsonb", json_object(metadata, "metadata"))
        if error_message is not None:
            changes["error_message"] = ("%s", error_message)

        async def write(conn: Conn) -> DictRow:
            if not changes:
                return await _completion_row(conn, user_id, completion_id)
            if "completion_text" in changes:
                changes["completed_at"] = ("%s", timestamp())
            assignments = ", ".join(f"{column} = {cast}" for column, (cast, _) in changes.items())
            row = await _one(
                conn,
                f"UPDATE completions SET {assignments} WHERE id = %s AND user_id = %s"
                f" RETURNING {COMPLETION_COLUMNS}",
                (*(value for _, value in changes.values()), completion_id, user_id),
            )
            if row is None:
                raise not_found("completion", completion_id)
            await _touch_chats(conn, user_id, [row["chat_id"]])
            return row

        row = await self._write(write)
        return stored_completion(row, row["metadata"])

    async def delete_chats(self, user_id: str, chat_ids: list[str]) -> int:
        """Delete the user's chats among ``chat_ids`` with their completions; how many went."""
        ids = sorted(unique_uuids(chat_ids, "chat id"))  # one order: fewer deadlocks
        if not ids:
            return 0

        async def write(conn: Conn) -> int:
            deleted = await conn.execute(
                "DELETE FROM chats WHERE user_id = %s AND id = ANY(%s)", (user_id, ids)
            )
            return deleted.rowcount

        return await self._write(write)

    async def delete_completions(self, user_id: str, completion_ids: list[str]) -> int:
        """Delete the user's completions among ``completion_ids`` and bump their chats'
        updated_at; how many went."""
        ids = sorted(unique_uuids(completion_ids, "completion id"))
        if not ids:
            return 0

        async def write(conn: Conn) -> int:
            rows = await _all(
                conn,
                "DELETE FROM completions WHERE user_id = %s AND id = ANY(%s) RETURNING chat_id",
                (user_id, ids),
            )
            await _touch_chats(conn, user_id, sorted({row["chat_id"] for row in rows}))
            return len(rows)

        return await self._write(write)

    async def search_chat_ids(self, user_id: str, term: str) -> list[str]:
        """Ids of the user's chats with a completion matching every word of ``term`` in its
        prompt or text (the last word as a prefix), most recently updated first."""
        query = tsquery(term)
        if query is None:
            return []
        rows = await self._read(lambda conn: _all(conn, SEARCH_SQL, (user_id, query, user_id)))
        return [row["id"] for row in rows]

    async def search_chats_page(
        self, user_id: str, term: str, *, cursor: str | None = None, limit: int = 20
    ) -> ChatPage:
        """A page of the user's chats that ``search_chat_ids`` finds for ``term``, the chat
        with the newest matching completion first; each chat once, at its newest match among
        the completions that existed when the first page was read (see the SQLite store)."""
        query = tsquery(term)
        listing = f"search\0{term}"
        cursors = await self._cursor_signer()
        check_limit(limit)
        after = None if cursor is None else cursors.key(cursor, user_id, listing)
        if query is None:
            return ChatPage([], None)

        async def read(conn: Conn) -> tuple[int, list[DictRow]]:
            if after is None:
                row = await _one(conn, "SELECT coalesce(max(seq), 0) AS top FROM completions", ())
                top = 0 if row is None else int(row["top"])
                position = top + 1
            else:
                top, position = int(after[0]), after[1]
            params = (query, user_id, top, position, limit + 1, user_id)
            return top, await _all(conn, SEARCH_PAGE_SQL, params)

        top, rows = await self._read(read)
        return chat_page(
            rows, limit, lambda last: cursors.make(user_id, listing, str(top), int(last["at"]))
        )

    async def list_deep_research_completions(self, user_id: str) -> list[ParsedCompletion]:
        """The user's completions whose metadata has a "deep-researcher" entry, newest first."""
        rows = await self._read(
            lambda conn: _all(
                conn,
                f"SELECT {COMPLETION_COLUMNS} FROM completions WHERE user_id = %s"
                " AND metadata ? 'deep-researcher' ORDER BY created_at DESC, seq DESC",
                (user_id,),
            )
        )
        return [parsed_completion(row, row["metadata"]) for row in rows]

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

        async def write(conn: Conn) -> Job:
            if completion_id is not None:
                # FOR KEY SHARE: the completion cannot go before the job refers to it.
                await _completion_row(conn, user_id, completion_id, lock=" FOR KEY SHARE")
            now = timestamp()
            row = await _one(
                conn,
                "INSERT INTO jobs (id, user_id, status, request, completion_id, miners,"
                " search_filters, created_at, updated_at)"
                " VALUES (%s, %s, 'pending', %s::jsonb, %s, %s, %s::jsonb, %s, %s) RETURNING *",
                (job_id, user_id, request_json, completion_id, miners, filters_json, now, now),
            )
            assert row is not None  # an INSERT … RETURNING returns its row
            return _job(row, [])

        return await self._write(write)

    async def get_job(self, user_id: str, job_id: str, *, after_seq: int = 0) -> Job:
        """The job with its chunks after ``after_seq`` (all of them by default), in order."""
        job_id = check_uuid(job_id, "job id")

        async def read(conn: Conn) -> Job:
            return (await _jobs(conn, [await _job_row(conn, job_id, user_id)], after_seq))[0]

        return await self._read(read)

    async def append_chunk(self, job_id: str, chunk: str, *, attempt: int | None = None) -> int:
        """Add a chunk to a job's result; its seq_id, one more than the last (1 for the first).
        Refused as the SQLite store's: a finished job, or one whose lease has passed."""
        job_id = check_uuid(job_id, "job id")

        async def write(conn: Conn) -> int:
            # The job's row lock orders the appends to one job, in every replica.
            job = await _job_row(conn, job_id, lock=" FOR UPDATE")
            check_lease(job, attempt, "it takes no more chunks")
            return await _append_chunk(conn, job, chunk)

        seq_id = await self._write(write)
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
        A finished job stays as it is; with ``attempt``, the job must still run under that
        lease (see the SQLite store)."""
        job_id = check_uuid(job_id, "job id")
        check_statuses([status])

        async def write(conn: Conn) -> Job:
            job = await _job_row(conn, job_id, lock=" FOR UPDATE")
            if has_status_already(job, status, attempt):
                return (await _jobs(conn, [job]))[0]
            await _notify(conn, [job_id])
            row = await _one(
                conn,
                "UPDATE jobs SET status = %s, error = %s, updated_at = %s WHERE id = %s"
                " RETURNING *",
                (status, error, timestamp(), job_id),
            )
            assert row is not None  # the row is locked: it is still there
            return (await _jobs(conn, [row]))[0]

        job = await self._write(write)
        self._signals.fire(job_id)
        return job

    async def list_jobs_by_status(self, statuses: list[JobStatus]) -> list[Job]:
        """Every user's jobs in one of ``statuses``, oldest first (to resume after a restart)."""
        check_statuses(statuses)
        wanted = sorted(set(statuses))
        if not wanted:
            return []

        async def read(conn: Conn) -> list[Job]:
            rows = await _all(
                conn,
                "SELECT * FROM jobs WHERE status = ANY(%s) ORDER BY created_at, seq",
                (wanted,),
            )
            return await _jobs(conn, rows)

        return await self._read(read)

    async def claim_next_job(self, miners: Collection[str] = ()) -> Job | None:
        """A pending job that runs on the engine's miners or on one of the sets named in
        ``miners``, now running; None when none waits. Fair across users, as the SQLite
        store's (the fewest running, then the longest since a start, then the oldest).

        ``FOR UPDATE SKIP LOCKED``: runners in several replicas never claim one job twice,
        and one never waits for another's claim: it takes the next job instead.
        """
        names = sorted(set(miners))

        async def write(conn: Conn) -> Job | None:
            row = await _one(
                conn,
                "SELECT id FROM jobs AS job WHERE status = 'pending'"
                " AND (miners IS NULL OR miners = ANY(%s)) ORDER BY"
                " (SELECT count(*) FROM jobs WHERE user_id = job.user_id"
                " AND status = 'running'),"
                " coalesce((SELECT max(started_at) FROM jobs WHERE user_id = job.user_id), ''),"
                " created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED",
                (names,),
            )
            if row is None:
                return None
            now = timestamp()
            await _notify(conn, [row["id"]])
            claimed = await _one(
                conn,
                "UPDATE jobs SET status = 'running', error = NULL, updated_at = %s,"
                " started_at = %s, attempt = attempt + 1 WHERE id = %s RETURNING *",
                (now, now, row["id"]),
            )
            assert claimed is not None  # the row is locked: it is still there
            return (await _jobs(conn, [claimed]))[0]

        job = await self._write(write)
        return None if job is None else self._signals.fire_each([job])[0]

    async def touch_jobs(self, leases: Mapping[str, int]) -> set[str]:
        """The heartbeat of a runner's jobs (job id -> the attempt it runs); returns the ids
        of those it no longer holds (see the SQLite store)."""
        ids = unique_uuids(list(leases), "job id")
        if not ids:
            return set()

        async def write(conn: Conn) -> set[str]:
            rows = await _all(
                conn,
                "UPDATE jobs SET updated_at = %s FROM unnest(%s::text[], %s::int[])"
                " AS lease (id, attempt) WHERE jobs.id = lease.id AND status = 'running'"
                " AND jobs.attempt = lease.attempt RETURNING jobs.id",
                (timestamp(), ids, [leases[job_id] for job_id in ids]),
            )
            return set(ids) - {row["id"] for row in rows}

        return await self._write(write)

    async def take_over_stale_jobs(
        self, before: datetime, *, chunk: str, max_takeovers: int, error: str
    ) -> list[Job]:
        """The running jobs whose heartbeat stopped before ``before``: back to the queue with
        ``chunk``, or failed with ``error`` after ``max_takeovers`` (see the SQLite store).
        Row locks, skipping those another replica is taking over, so each is taken once."""
        cutoff = format_time(before)
        find = "SELECT id FROM jobs WHERE status = 'running' AND updated_at < %s"
        # Read first: every runner sweeps at each heartbeat, and mostly nothing is stale.
        if not await self._read(lambda conn: _all(conn, find, (cutoff,))):
            return []

        async def write(conn: Conn) -> list[Job]:
            now, taken = timestamp(), []
            for job in await _all(
                conn,
                "SELECT * FROM jobs WHERE status = 'running'"
                " AND updated_at < %s ORDER BY seq FOR UPDATE SKIP LOCKED",
                (cutoff,),
            ):
                if job["takeovers"] >= max_takeovers:
                    await _notify(conn, [job["id"]])
                    row = await _one(
                        conn,
                        "UPDATE jobs SET status = 'failed', error = %s, updated_at = %s"
                        " WHERE id = %s RETURNING *",
                        (error, now, job["id"]),
                    )
                else:
                    await _append_chunk(conn, job, chunk)
                    row = await _one(
                        conn,
                        "UPDATE jobs SET status = 'pending', takeovers = takeovers + 1,"
                        " updated_at = %s WHERE id = %s RETURNING *",
                        (now, job["id"]),
                    )
                assert row is not None  # the row is locked: it is still there
                taken.append(row)
            return await _jobs(conn, taken)

        return self._signals.fire_each(await self._write(write))

    async def fail_waiting_jobs(
        self, before: datetime, error: str, *, held: Collection[str] = ()
    ) -> list[Job]:
        """Mark failed, with ``error``, the pending jobs on a named set of miners (a
        session's) not in ``held`` that have waited since before ``before``; returns them."""
        where = (
            " WHERE status = 'pending' AND miners IS NOT NULL AND NOT (miners = ANY(%s))"
            " AND updated_at < %s"
        )
        params = (sorted(set(held)), format_time(before))
        # Read first: the runner sweeps often, and most of the time nothing is stale.
        if not await self._read(lambda conn: _all(conn, "SELECT id FROM jobs" + where, params)):
            return []

        async def write(conn: Conn) -> list[Job]:
            rows = await _all(
                conn,
                "UPDATE jobs SET status = 'failed', error = %s, updated_at = %s"
                + where
                + " RETURNING *",
                (error, timestamp(), *params),
            )
            await _notify(conn, [row["id"] for row in rows])
            return await _jobs(conn, sorted(rows, key=lambda row: int(row["seq"])))

        return self._signals.fire_each(await self._write(write))

    async def sync_job_completions(
        self, user_id: str, job_id: str, status: JobStatus, *, completion_text: str | None = None
    ) -> int:
        """Bring the user's completions linked to the job to ``status`` if that is still the
        job's status, keeping the rest of their metadata (see the SQLite store)."""
        job_id = check_uuid(job_id, "job id")
        check_statuses([status])
        where = (
            " WHERE user_id = %s AND metadata -> 'deep-researcher' ->> 'jobId' = %s"
            " AND (metadata -> 'deep-researcher' ->> 'status') IS DISTINCT FROM %s"
        )
        keys = (user_id, job_id, status)

        async def outdated(conn: Conn, lock: str = "") -> tuple[DictRow, int]:
            job = await _job_row(conn, job_id, user_id, lock=lock)
            if job["status"] != status:
                return job, 0
            found = await _one(conn, "SELECT count(*) AS n FROM completions" + where, keys)
            return job, 0 if found is None else int(found["n"])

        # Read first: callers sync on every poll of a job, and most of the time nothing changes.
        if (await self._read(outdated))[1] == 0:
            return 0

        async def write(conn: Conn) -> int:
            # FOR SHARE: the job's status cannot change until this sync is written.
            job, count = await outdated(conn, " FOR SHARE")
            if count == 0:
                return 0
            changes = [
                "metadata = jsonb_set(metadata, '{deep-researcher,status}', to_jsonb(%s::text))"
            ]
            values: list[str] = [status]
            if status == "failed":
                changes.append("error_message = %s")
                values.append(job["error"] or "")
            if status == "completed" and completion_text is not None:
                changes += ["completion_text = %s", "completed_at = %s"]
                changes.append("text_words = %s::tsvector")
                values += [completion_text, timestamp(), tsvector(completion_text, first=2)]
            updated = await conn.execute(
                f"UPDATE completions SET {', '.join(changes)}" + where, (*values, *keys)
            )
            return updated.rowcount

        return await self._write(write)

    # --- replies to writes with an idempotency key ---

    async def claim_reply(
        self, user_id: str, key: str, method: str, request_digest: str
    ) -> StoredReply | None:
        """What is kept for the user's ``key`` (the last 24 h), or None: the key is now
        claimed for this request (see the SQLite store). Of two tries at once, in one
        replica or several, one claims and the other sees the claim."""
        cutoff = ago(REPLY_SECONDS)

        async def write(conn: Conn) -> StoredReply | None:
            await conn.execute(
                "DELETE FROM replies WHERE user_id = %s AND key = %s AND created_at < %s",
                (user_id, key, cutoff),
            )
            # ON CONFLICT waits for another try's claim to commit (or roll back).
            inserted = await conn.execute(
                "INSERT INTO replies (user_id, key, method, request_digest, created_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (user_id, key, method, request_digest, timestamp()),
            )
            if inserted.rowcount == 1:
                await conn.execute("DELETE FROM replies WHERE created_at < %s", (cutoff,))
                return None
            row = await _one(
                conn,
                "SELECT method, request_digest, reply, created_at FROM replies"
                " WHERE user_id = %s AND key = %s",
                (user_id, key),
            )
            assert row is not None  # it conflicted with a committed row, never deleted here
            return stored_reply(row)

        return await self._write(write)

    async def remember_reply(self, user_id: str, key: str, reply: bytes) -> None:
        """Keep ``reply`` for the user's claimed ``key`` (24 h from the claim)."""

        async def write(conn: Conn) -> None:
            await conn.execute(
                "UPDATE replies SET reply = %s WHERE user_id = %s AND key = %s AND reply IS NULL",
                (reply, user_id, key),
            )

        await self._write(write)

    async def forget_reply(self, user_id: str, key: str) -> None:
        """Let go of the user's claimed ``key`` whose write failed: a retry does it anew."""

        async def write(conn: Conn) -> None:
            await conn.execute(
                "DELETE FROM replies WHERE user_id = %s AND key = %s AND reply IS NULL",
                (user_id, key),
            )

        await self._write(write)

    # --- fetched web pages ---

    async def get_page(self, url: str, max_age: float) -> CachedPage | None:
        """The page read from ``url`` within the last ``max_age`` seconds, if kept."""
        cutoff = ago(max_age)

        async def read(conn: Conn) -> DictRow | None:
            return await _one(
                conn,
                "SELECT final_url, content, fetched_at FROM pages"
                " WHERE url = %s AND fetched_at >= %s",
                (url, cutoff),
            )

        row = await self._read(read)
        return None if row is None else cached_page(row)

    async def put_page(
        self, url: str, final_url: str, content: str, *, max_age: float, keep: int
    ) -> None:
        """Keep the page read from ``url``; drop the pages older than ``max_age`` seconds and
        the oldest beyond the newest ``keep``."""
        cutoff = ago(max_age)

        async def write(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO pages (url, final_url, content, fetched_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (url) DO UPDATE SET"
                " final_url = excluded.final_url, content = excluded.content,"
                " fetched_at = excluded.fetched_at",
                (url, final_url, content, timestamp()),
            )
            await conn.execute("DELETE FROM pages WHERE fetched_at < %s", (cutoff,))
            await conn.execute(
                "DELETE FROM pages WHERE url IN"
                " (SELECT url FROM pages ORDER BY fetched_at DESC OFFSET %s)",
                (max(keep, 1),),
            )

        await self._write(write)

    # --- maintenance ---

    async def integrity_check(self) -> str:
        """``"ok"``, or the problems found, one a line: indexes PostgreSQL marked invalid,
        and completions whose words (the full-text index's input) do not match their text."""

        async def check(conn: Conn) -> str:
            problems = [
                f"the index {row['name']} is invalid: REINDEX it"
                for row in await _all(
                    conn,
                    "SELECT indexrelid::regclass::text AS name FROM pg_index"
                    " WHERE NOT indisvalid AND indrelid = ANY(%s::regclass[])",
                    (list(TABLES),),
                )
            ]
            stale, after = 0, 0
            while True:  # in batches by seq: the texts of every completion never held at once
                rows = await _all(
                    conn,
                    "SELECT seq, user_prompt_text, completion_text, prompt_words::text AS p,"
                    " text_words::text AS t FROM completions WHERE seq > %s ORDER BY seq"
                    " LIMIT 500",
                    (after,),
                )
                if not rows:
                    break
                after = int(rows[-1]["seq"])
                expected = await _all(
                    conn,
                    "SELECT p::tsvector::text AS p, t::tsvector::text AS t"
                    " FROM unnest(%s::text[], %s::text[]) AS words (p, t)",
                    (
                        [tsvector(row["user_prompt_text"]) for row in rows],
                        [tsvector(row["completion_text"], first=2) for row in rows],
                    ),
                )
                stale += sum(
                    (row["p"], row["t"]) != (want["p"], want["t"])
                    for row, want in zip(rows, expected, strict=True)
                )
            if stale:
                problems.append(
                    f"the full-text index does not match the completions ({stale} differ)"
                )
            return "\n".join(problems) or "ok"

        return await self._read(check)


# --- words: the full-text index's input and queries -----------------------------------------

_WORD = re.compile(r"[^\W_]+")  # letters and digits, as FTS5's unicode61 tokenizer reads them


def words_of(text: str) -> list[str]:
    """The words of ``text`` as the index holds them: split at what is not a letter or digit,
    lowercased, diacritics removed (also in decomposed form: "cre\\u0300me" is "creme");
    a word too long for PostgreSQL's index is left out."""
    return [word for word in _fold(text) if len(word.encode()) <= MAX_LEXEME_BYTES]


def _fold(text: str) -> list[str]:
    if not text.isascii():
        decomposed = unicodedata.normalize("NFD", text)
        marks = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
        text = unicodedata.normalize("NFC", marks)
    return _WORD.findall(text.lower())


def tsvector(text: str, *, first: int = 1) -> str:
    """The ``tsvector`` literal of ``text``'s words at their positions, from ``first``.

    The completion's text starts at 2: the index concatenates it after the prompt, and the
    gap keeps a phrase from matching across the two, as FTS5's columns do.
    """
    positions: dict[str, list[int]] = {}
    for n, word in enumerate(words_of(text), start=first):
        at = positions.setdefault(word, [])
        if len(at) < MAX_POSITIONS:
            at.append(min(n, 16383))  # PostgreSQL's highest position
    return " ".join(f"'{word}':{','.join(map(str, at))}" for word, at in positions.items())


def tsquery(term: str) -> str | None:
    """A ``tsquery`` matching every word of ``term`` as plain text, the last as a prefix:
    each word of the term is a phrase of the words it holds ("tea,NOT": "tea" then "not").
    None when no word is searchable, or when one is too long to be in the index."""
    # surrogates: a term that cannot be stored still searches what it can.
    term = term.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")
    phrases = []
    for part in term.split():
        words = _fold(part)
        if not words:
            continue
        if any(len(word.encode()) > MAX_LEXEME_BYTES for word in words):
            return None  # a word longer than any the index holds: nothing matches
        phrases.append([f"'{word}'" for word in words])
    if not phrases:
        return None
    phrases[-1][-1] += ":*"
    return " & ".join("(" + " <-> ".join(phrase) + ")" for phrase in phrases)


# --- helpers (inside a transaction) ------------------------------------------------------------


async def _migrate(conn: Conn, display: str) -> None:
    # Every pending migration in one transaction holding the migration lock: of replicas that
    # start at once, one migrates; the others wait for its commit, then find nothing to do.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS apex_schema (version integer NOT NULL)")
        row = await _one(conn, "SELECT version FROM apex_schema", ())
        version = 0 if row is None else int(row["version"])
        if version > len(MIGRATIONS):
            raise ApexError(
                Code.FAILED_PRECONDITION,
                f"{display} has schema version {version}, newer than this apex-mcp knows "
                f"({len(MIGRATIONS)}): upgrade apex-mcp or use another database",
            )
        if version == len(MIGRATIONS):
            return
        for script in MIGRATIONS[version:]:
            await conn.execute(script.encode())  # bytes: several statements, no parameters
        if version == 0:
            await conn.execute(
                "INSERT INTO secrets (name, value) VALUES ('cursor', %s)",
                (secrets.token_bytes(32),),
            )
            await conn.execute("INSERT INTO apex_schema (version) VALUES (%s)", (len(MIGRATIONS),))
        else:
            await conn.execute("UPDATE apex_schema SET version = %s", (len(MIGRATIONS),))


async def _all(conn: Conn, sql: str, params: Sequence[object]) -> list[DictRow]:
    cursor = await conn.execute(sql, params)
    return await cursor.fetchall()


async def _one(conn: Conn, sql: str, params: Sequence[object]) -> DictRow | None:
    cursor = await conn.execute(sql, params)
    return await cursor.fetchone()


async def _chat_row(conn: Conn, user_id: str, chat_id: str) -> DictRow:
    row = await _one(conn, f"{LIST_PAGE_SQL} AND chats.id = %s", (user_id, chat_id))
    if row is None:
        raise not_found("chat", chat_id)
    return row


async def _completion_row(
    conn: Conn, user_id: str, completion_id: str, *, lock: str = ""
) -> DictRow:
    row = await _one(
        conn,
        f"SELECT {COMPLETION_COLUMNS} FROM completions WHERE id = %s AND user_id = %s{lock}",
        (completion_id, user_id),
    )
    if row is None:
        raise not_found("completion", completion_id)
    return row


async def _job_row(
    conn: Conn, job_id: str, user_id: str | None = None, *, lock: str = ""
) -> DictRow:
    # Without user_id: the engine's runner, which may touch any user's job.
    if user_id is None:
        row = await _one(conn, f"SELECT * FROM jobs WHERE id = %s{lock}", (job_id,))
    else:
        row = await _one(
            conn, f"SELECT * FROM jobs WHERE id = %s AND user_id = %s{lock}", (job_id, user_id)
        )
    if row is None:
        raise not_found("job", job_id)
    return row


async def _notify(conn: Conn, job_ids: list[str]) -> None:
    # Delivered at commit to every replica's LISTEN (this one's too), once per job.
    for job_id in job_ids:
        await conn.execute("SELECT pg_notify(%s, %s)", (NEWS_CHANNEL, job_id))


async def _append_chunk(conn: Conn, job: DictRow, chunk: str) -> int:
    # The caller holds the job's row lock: it orders the appends to one job, in every replica.
    await _notify(conn, [job["id"]])
    now = timestamp()
    row = await _one(
        conn,
        "INSERT INTO job_chunks (job_id, user_id, seq_id, chunk, created_at)"
        " SELECT %s, %s, coalesce(max(seq_id), 0) + 1, %s, %s FROM job_chunks"
        " WHERE job_id = %s RETURNING seq_id",
        (job["id"], job["user_id"], chunk, now, job["id"]),
    )
    await conn.execute("UPDATE jobs SET updated_at = %s WHERE id = %s", (now, job["id"]))
    assert row is not None  # an INSERT … RETURNING returns its row
    return int(row["seq_id"])


async def _jobs(conn: Conn, rows: list[DictRow], after_seq: int = 0) -> list[Job]:
    """The jobs of ``rows`` with their chunks after ``after_seq``, in one query."""
    if not rows:
        return []
    chunks: dict[str, list[DeepResearcherResultChunk]] = {row["id"]: [] for row in rows}
    for chunk in await _all(
        conn,
        "SELECT job_id, seq_id, chunk FROM job_chunks WHERE job_id = ANY(%s) AND seq_id > %s"
        " ORDER BY job_id, seq_id",
        (list(chunks), after_seq),
    ):
        chunks[chunk["job_id"]].append(
            DeepResearcherResultChunk(seq_id=chunk["seq_id"], chunk=chunk["chunk"])
        )
    return [_job(row, chunks[row["id"]]) for row in rows]


def _job(row: DictRow, chunks: list[DeepResearcherResultChunk]) -> Job:
    return make_job(row, chunks, request=row["request"], search_filters=row["search_filters"])


async def _touch_chats(conn: Conn, user_id: str, chat_ids: list[str]) -> None:
    # A chat's updated_at is its last activity: list and search order go by it.
    await conn.execute(
        "UPDATE chats SET updated_at = %s WHERE user_id = %s AND id = ANY(%s)",
        (timestamp(), user_id, chat_ids),
    )


_INVALID_TEXT = {
    "22P05": "the text has a character PostgreSQL cannot store (such as \\u0000)",
    "22021": "the text has a character PostgreSQL cannot store",
}


def _apex_error(error: psycopg.Error, display: str) -> ApexError:
    state, detail = error.sqlstate or "", str(error).strip()
    if isinstance(error, psycopg.DataError) and "NUL" in detail:
        return ApexError(
            Code.INVALID_ARGUMENT, "the text has a NUL character, which PostgreSQL cannot store"
        )
    if state in _INVALID_TEXT:
        return ApexError(Code.INVALID_ARGUMENT, _INVALID_TEXT[state])
    if state == "53100":
        return ApexError(Code.RESOURCE_EXHAUSTED, f"the disk of the database {display} is full")
    if state in ("XX001", "XX002"):
        return ApexError(Code.DATA_LOSS, f"the database {display} is damaged: {detail}")
    if isinstance(error, psycopg.OperationalError):
        return ApexError(Code.UNAVAILABLE, f"the database {display} is unavailable: {detail}")
    return ApexError(Code.INTERNAL, f"database error in {display}: {detail}")
