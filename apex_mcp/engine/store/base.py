"""What the engine asks of its storage: the ``Store`` protocol and the deep-research ``Job``.

Every row belongs to a user. Methods that take ``user_id`` only ever see that user's rows:
another user's id is answered ``not_found``, exactly like an id that does not exist. The job
methods without ``user_id`` are for the engine's own job runner, never for a caller's request.

A job is leased to the runner that claimed it: each claim starts a new ``attempt``, and the
runner's own writes (``append_chunk``, ``set_job_status`` with ``attempt=``) are refused,
``failed_precondition``, once the job no longer runs under that attempt: finished, cancelled,
or handed to another runner after its heartbeat stopped. So a runner that stalled past its
lease and wakes up cannot write over the one that took its job over.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol, get_args

from pydantic import AwareDatetime, BaseModel, Field

from apex_mcp.apex.models import (
    ChatSession,
    DeepResearcherResultChunk,
    ParsedChat,
    ParsedCompletion,
    StoredChatCompletion,
)

JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
FINISHED_JOB_STATUSES: frozenset[JobStatus] = frozenset({"completed", "failed", "cancelled"})


class Job(BaseModel):
    """A deep-research job and the chunks of its result (``seq_id`` 1, 2, 3… in order)."""

    id: str
    user_id: str
    status: JobStatus
    created_at: AwareDatetime
    updated_at: AwareDatetime
    request: dict[str, Any]
    completion_id: str | None = None
    miners: str | None = None  # the set of miners it runs on, when not the engine's
    error: str | None = None
    # Its lease: one more at each claim. A runner's writes name the attempt they belong to,
    # so one that lost its lease (taken over while it stalled) can no longer write.
    attempt: int = 0
    takeovers: int = 0  # how often its runner was lost and another took it over
    chunks: list[DeepResearcherResultChunk] = Field(default_factory=list)


class StoredReply(NamedTuple):
    """The reply to a write sent with an idempotency key: what a retry of it gets."""

    method: str  # the RPC, e.g. "CreateChatAndCompletion"
    request_digest: str  # of the request's body: the key may not be reused for another
    reply: bytes | None  # the encoded reply; None while the first try is being answered
    created_at: datetime  # when the first try came


class ChatPage(NamedTuple):
    """One page of a listing: its chats, and the cursor of the next page (None: the last)."""

    chats: list[ChatSession]
    next_cursor: str | None


class Store(Protocol):
    """Chats, completions and deep-research jobs, per user. Errors are ``ApexError``s."""

    async def close(self) -> None: ...

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
    ) -> tuple[ParsedChat, ParsedCompletion]: ...

    async def create_completion(
        self, user_id: str, chat_id: str, *, user_prompt: str, completion_type: str
    ) -> ParsedCompletion: ...

    async def list_chats(self, user_id: str, chat_type: str | None = None) -> list[ChatSession]: ...

    async def list_chats_page(
        self,
        user_id: str,
        *,
        chat_type: str | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> ChatPage: ...

    async def get_chat(self, user_id: str, chat_id: str) -> ChatSession: ...

    async def list_completions(self, user_id: str, chat_id: str) -> list[StoredChatCompletion]: ...

    async def get_completion(self, user_id: str, completion_id: str) -> StoredChatCompletion: ...

    async def update_chat(
        self, user_id: str, chat_id: str, *, title: str | None = None, chat_type: str | None = None
    ) -> ChatSession: ...

    async def update_completion(
        self,
        user_id: str,
        completion_id: str,
        *,
        completion_text: str | None = None,
        user_prompt_text: str | None = None,
        metadata: dict[str, Any] | None = None,
        error_message: str | None = None,
    ) -> StoredChatCompletion: ...

    async def delete_chats(self, user_id: str, chat_ids: list[str]) -> int: ...

    async def delete_completions(self, user_id: str, completion_ids: list[str]) -> int: ...

    async def search_chat_ids(self, user_id: str, term: str) -> list[str]: ...

    async def search_chats_page(
        self, user_id: str, term: str, *, cursor: str | None = None, limit: int = 20
    ) -> ChatPage: ...

    async def list_deep_research_completions(self, user_id: str) -> list[ParsedCompletion]: ...

    # --- deep-research jobs ---

    async def create_job(
        self,
        user_id: str,
        *,
        request: dict[str, Any],
        completion_id: str | None = None,
        miners: str | None = None,
    ) -> Job: ...

    async def get_job(self, user_id: str, job_id: str, *, after_seq: int = 0) -> Job: ...

    async def append_chunk(self, job_id: str, chunk: str, *, attempt: int | None = None) -> int: ...

    async def set_job_status(
        self,
        job_id: str,
        status: JobStatus,
        *,
        error: str | None = None,
        attempt: int | None = None,
    ) -> Job: ...

    async def list_jobs_by_status(self, statuses: list[JobStatus]) -> list[Job]: ...

    # --- the job runner's own: claims, heartbeats, completions linked to a job ---

    async def claim_next_job(self, miners: Collection[str] = ()) -> Job | None: ...

    async def touch_jobs(self, leases: Mapping[str, int]) -> set[str]: ...

    async def take_over_stale_jobs(
        self, before: datetime, *, chunk: str, max_takeovers: int, error: str
    ) -> list[Job]: ...

    async def fail_waiting_jobs(
        self, before: datetime, error: str, *, held: Collection[str] = ()
    ) -> list[Job]: ...

    async def sync_job_completions(
        self, user_id: str, job_id: str, status: JobStatus, *, completion_text: str | None = None
    ) -> int: ...

    # --- replies to writes with an idempotency key ---

    async def claim_reply(
        self, user_id: str, key: str, method: str, request_digest: str
    ) -> StoredReply | None: ...

    async def remember_reply(self, user_id: str, key: str, reply: bytes) -> None: ...

    async def forget_reply(self, user_id: str, key: str) -> None: ...

    # --- maintenance ---

    async def integrity_check(self) -> str: ...
