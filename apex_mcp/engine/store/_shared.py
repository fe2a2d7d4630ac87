"""What the two stores share beside their SQL: argument checks, ids, times, error messages,
the rows made into the engine's models, the job leases and the cursors of paged listings.

Rows are read by column name (``row["id"]``): SQLite's ``sqlite3.Row`` and psycopg's
``DictRow`` both are. A JSON column is text in SQLite and already decoded in PostgreSQL, so
the conversions that need one take it decoded, from the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from apex_mcp.apex.errors import ApexError, Code
from apex_mcp.apex.models import (
    ChatSession,
    DeepResearcherResultChunk,
    ParsedChat,
    ParsedCompletion,
    StoredChatCompletion,
)
from apex_mcp.engine.store.base import (
    FINISHED_JOB_STATUSES,
    JOB_STATUSES,
    CachedPage,
    ChatPage,
    Job,
    JobStatus,
    StoredReply,
)

MAX_PAGE = 1000  # the most chats one page may ask for
REPLY_SECONDS = 24 * 3600  # how long the reply to a write with an idempotency key is kept
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class Row(Protocol):
    """A row of either store, read by column name."""

    def __getitem__(self, column: str, /) -> Any: ...


class OpenClose:
    """``async with store``: opened on entry, closed on exit."""

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# --- times and ids --------------------------------------------------------------------------


def timestamp() -> str:
    """The stored form of now."""
    return format_time(datetime.now(UTC))


def ago(seconds: float) -> str:
    """The stored form of the time ``seconds`` ago."""
    return format_time(datetime.now(UTC) - timedelta(seconds=seconds))


def format_time(moment: datetime) -> str:
    # Fixed-width UTC text with microseconds: it sorts as text.
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    # fromisoformat reads the stored form (with its Z) some 40 times faster than strptime.
    return datetime.fromisoformat(text)


def new_id() -> str:
    return str(uuid.uuid4())


def check_uuid(value: str, what: str) -> str:
    """``value`` in the canonical form ids are stored in; invalid_argument if not a UUID."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        shown = repr(value) if len(repr(value)) <= 50 else repr(value)[:47] + "…"
        raise ApexError(Code.INVALID_ARGUMENT, f"{what} {shown} is not a UUID") from None


def unique_uuids(values: list[str], what: str) -> list[str]:
    return list(dict.fromkeys(check_uuid(value, what) for value in values))


# --- argument checks and errors -------------------------------------------------------------


def not_found(what: str, row_id: str) -> ApexError:
    return ApexError(Code.NOT_FOUND, f"no {what} {row_id}")


def not_unicode() -> ApexError:
    return ApexError(
        Code.INVALID_ARGUMENT, "the text is not valid Unicode (it has lone surrogates)"
    )


def check_statuses(statuses: list[JobStatus]) -> None:
    for status in statuses:
        if status not in JOB_STATUSES:
            raise ApexError(
                Code.INVALID_ARGUMENT,
                f"unknown job status {status!r}; one of {', '.join(JOB_STATUSES)}",
            )


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ApexError(Code.INVALID_ARGUMENT, f"limit must be from 1 to {MAX_PAGE}, not {limit}")


def json_object(value: object, what: str) -> str:
    """``value``, a JSON object, as JSON text; invalid_argument if it is not one."""
    if not isinstance(value, dict):
        raise ApexError(Code.INVALID_ARGUMENT, f"{what} must be a JSON object")
    try:
        # allow_nan=False: NaN is not JSON, and the databases' JSON would reject the row.
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise ApexError(Code.INVALID_ARGUMENT, f"{what} is not valid JSON: {e}") from None


def title_from(prompt: str, limit: int = 60) -> str:
    # The Apex app titled a new chat after the start of its first prompt.
    title = " ".join(prompt.split())
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


# --- job leases -----------------------------------------------------------------------------


def check_lease(job: Row, attempt: int | None, refused: str) -> None:
    """Refuse (failed_precondition) a runner's write to a finished job, or to one no longer
    run under its lease ``attempt`` (None: not the runner's own write)."""
    if job["status"] in FINISHED_JOB_STATUSES:
        raise ApexError(Code.FAILED_PRECONDITION, f"job {job['id']} is {job['status']}: {refused}")
    if attempt is not None and (job["status"] != "running" or job["attempt"] != attempt):
        raise ApexError(
            Code.FAILED_PRECONDITION,
            f"job {job['id']} is no longer run by this runner (it was handed back or taken"
            f" over): {refused}",
        )


def has_status_already(job: Row, status: JobStatus, attempt: int | None) -> bool:
    """Whether ``set_job_status`` has nothing to write: the job is finished as ``status``.
    Refused, failed_precondition: a finished job moved to another status, or a write
    under a lease ``attempt`` the job no longer runs under."""
    if attempt is not None:
        check_lease(job, attempt, f"it cannot become {status}")
    if job["status"] not in FINISHED_JOB_STATUSES:
        return False
    if job["status"] == status:
        return True
    raise ApexError(
        Code.FAILED_PRECONDITION,
        f"job {job['id']} is already {job['status']}; it cannot become {status}",
    )


# --- rows made into the engine's models -----------------------------------------------------


def new_completion(
    completion_id: str,
    chat_id: str,
    created: str,
    user_prompt: str,
    completion_type: str,
    completion_text: str = "",
    metadata_json: str = "{}",
) -> ParsedCompletion:
    """A completion as just written at ``created`` (its metadata as stored: the JSON text)."""
    return ParsedCompletion(
        id=completion_id,
        chat_id=chat_id,
        created_at=parse_time(created),
        user_prompt_text=user_prompt,
        completion_text=completion_text,
        completion_type=completion_type,
        metadata=json.loads(metadata_json),
    )


def new_chat(
    chat_id: str, title: str, chat_type: str, first: ParsedCompletion
) -> tuple[ParsedChat, ParsedCompletion]:
    """A chat as just written with its ``first`` completion, in the same transaction."""
    chat = ParsedChat(id=chat_id, title=title, created_at=first.created_at, chat_type=chat_type)
    return chat, first


def chat_session(row: Row) -> ChatSession:
    return ChatSession(
        id=row["id"],
        user_id=row["user_id"],
        title=row["title"],
        chat_type=row["chat_type"],
        created_at=parse_time(row["created_at"]),
        updated_at=parse_time(row["updated_at"]),
    )


def chat_page(rows: Sequence[Row], limit: int, cursor_after: Callable[[Row], str]) -> ChatPage:
    """The page of chats of ``rows`` (up to ``limit + 1`` of them: one more tells whether
    there is a next page), its cursor the one ``cursor_after`` its last chat."""
    chats = [chat_session(row) for row in rows[:limit]]
    if len(rows) <= limit:
        return ChatPage(chats, None)
    return ChatPage(chats, cursor_after(rows[limit - 1]))


def stored_completion(row: Row, metadata: dict[str, Any]) -> StoredChatCompletion:
    completed_at = row["completed_at"]
    return StoredChatCompletion(
        id=row["id"],
        chat_id=row["chat_id"],
        completion_type=row["completion_type"],
        created_at=parse_time(row["created_at"]),
        completed_at=None if completed_at is None else parse_time(completed_at),
        user_prompt_text=row["user_prompt_text"],
        completion_text=row["completion_text"],
        metadata=metadata,
        error_message=row["error_message"],
    )


def parsed_completion(row: Row, metadata: dict[str, Any]) -> ParsedCompletion:
    return ParsedCompletion(
        id=row["id"],
        chat_id=row["chat_id"],
        created_at=parse_time(row["created_at"]),
        user_prompt_text=row["user_prompt_text"],
        completion_text=row["completion_text"],
        completion_type=row["completion_type"],
        metadata=metadata,
    )


def make_job(
    row: Row,
    chunks: list[DeepResearcherResultChunk],
    *,
    request: dict[str, Any],
    search_filters: dict[str, Any] | None,
) -> Job:
    return Job(
        id=row["id"],
        user_id=row["user_id"],
        status=row["status"],
        created_at=parse_time(row["created_at"]),
        updated_at=parse_time(row["updated_at"]),
        request=request,
        completion_id=row["completion_id"],
        miners=row["miners"],
        search_filters=search_filters,
        error=row["error"],
        attempt=row["attempt"],
        takeovers=row["takeovers"],
        chunks=chunks,
    )


def stored_reply(row: Row) -> StoredReply:
    reply = None if row["reply"] is None else bytes(row["reply"])
    return StoredReply(row["method"], row["request_digest"], reply, parse_time(row["created_at"]))


def cached_page(row: Row) -> CachedPage:
    return CachedPage(row["final_url"], row["content"], parse_time(row["fetched_at"]))


# --- cursors of paged listings --------------------------------------------------------------

_BAD_CURSOR = (
    "the cursor is not one this listing gave (it is from another listing or user, or was "
    "altered): start again from the first page, without a cursor"
)


class Cursors:
    """Opaque cursors: the last chat's key, base64url, signed (HMAC-SHA256, truncated) with
    the database's own key and bound to the user and the listing, so a cursor from another
    user or listing, or an altered one, is refused instead of paging from somewhere else."""

    MAC_BYTES = 16

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "Cursors(<key hidden>)"

    def make(self, user_id: str, listing: str, created_at: str, seq: int) -> str:
        body = f"{created_at} {seq}".encode()
        return base64.urlsafe_b64encode(body + self._mac(user_id, listing, body)).decode()

    def key(self, cursor: str, user_id: str, listing: str) -> tuple[str, int]:
        """The (created_at, seq) the cursor pages after; invalid_argument if not genuine."""
        try:
            raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ApexError(Code.INVALID_ARGUMENT, _BAD_CURSOR) from None
        body, mac = raw[: -self.MAC_BYTES], raw[-self.MAC_BYTES :]
        if len(raw) <= self.MAC_BYTES or not hmac.compare_digest(
            mac, self._mac(user_id, listing, body)
        ):
            raise ApexError(Code.INVALID_ARGUMENT, _BAD_CURSOR)
        created_at, seq = body.decode().split(" ")
        return created_at, int(seq)

    def _mac(self, user_id: str, listing: str, body: bytes) -> bytes:
        # surrogatepass: a search term with a lone surrogate still gets its own cursor.
        texts = (user_id.encode("utf-8", "surrogatepass"), listing.encode("utf-8", "surrogatepass"))
        signed = b"\0".join((*texts, body))
        return hmac.new(self._key, signed, hashlib.sha256).digest()[: self.MAC_BYTES]
