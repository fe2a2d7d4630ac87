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

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol, get_args

import anyio
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
    # What its searches may return (SearchFilters.to_json), carried with the job so that a
    # runner anywhere that takes it up applies them.
    search_filters: dict[str, Any] | None = None
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


class CachedPage(NamedTuple):
    """A web page read before: where it ended up (after redirects), its extracted text
    (title line, then main text) and when it was read."""

    final_url: str
    content: str
    fetched_at: datetime


class ChatPage(NamedTuple):
    """One page of a listing: its chats, and the cursor of the next page (None: the last)."""

    chats: list[ChatSession]
    next_cursor: str | None


class JobSignals:
    """Wakes whoever waits for news of a job (a chunk, a status): a store fires a job's
    signal when it changes it; the PostgreSQL store also when another replica does.

    ``watch`` before reading the job, then wait: a change made in between is not missed.
    """

    def __init__(self) -> None:
        self._news: dict[str, anyio.Event] = {}  # job id -> the event its watchers wait on
        self._watchers: dict[str, int] = {}

    def fire(self, job_id: str) -> None:
        if (news := self._news.pop(job_id, None)) is not None:
            news.set()

    def fire_each(self, jobs: list[Job]) -> list[Job]:
        """Fire the signal of each of ``jobs``; returns them."""
        for job in jobs:
            self.fire(job.id)
        return jobs

    def fire_all(self) -> None:
        """Wake every watcher, to read its job again (news may have been missed)."""
        for job_id in list(self._news):
            self.fire(job_id)

    @asynccontextmanager
    async def watch(self, job_id: str) -> AsyncIterator[Callable[[float], Awaitable[None]]]:
        """``wait(timeout)``: return at the job's next change after ``watch`` began (at once
        if it came already), or after ``timeout`` seconds."""
        news = self._news.setdefault(job_id, anyio.Event())
        self._watchers[job_id] = self._watchers.get(job_id, 0) + 1

        async def wait(timeout: float) -> None:
            with anyio.move_on_after(timeout):
                await news.wait()

        try:
            yield wait
        finally:
            self._watchers[job_id] -= 1
            if not self._watchers[job_id]:  # nobody watches: forget the job
                del self._watchers[job_id]
                self._news.pop(job_id, None)


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
        search_filters: dict[str, Any] | None = None,
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

    def job_news(
        self, job_id: str
    ) -> contextlib.AbstractAsyncContextManager[Callable[[float], Awaitable[None]]]:
        """A job's news: watch it, read it, then ``wait(poll_seconds)`` for its next change
        (see ``JobSignals``). A store that hears every change of the job (whoever makes it)
        may wait longer than ``poll_seconds``; one that may miss some (the SQLite store does
        not hear other processes sharing its file) waits at most that long."""
        ...

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

    # --- fetched web pages: shared by every user (public pages, read without cookies) ---

    async def get_page(self, url: str, max_age: float) -> CachedPage | None: ...

    async def put_page(
        self, url: str, final_url: str, content: str, *, max_age: float, keep: int
    ) -> None: ...

    # --- maintenance ---

    async def integrity_check(self) -> str: ...
