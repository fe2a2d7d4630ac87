"""The Apex contract: ``ApexClient``, one async method per RPC of ``apex.v1.ApexService``.

RemoteApex (the wire) and LocalApex (the embedded engine) implement it; the wire server serves
any implementation of it. ``RPCS`` describes every method, as apex.proto declares it, for the
code that has to treat them generically (the wire server, the remote client's retry policy,
tests).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import anyio

from . import models
from .errors import ApexError, Code
from .gen.apex_methods import METHODS
from .gen.apex_methods import SERVICE as SERVICE
from .models import (
    ChatCompletionChunkResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatPage,
    ChatSession,
    CreateChatAndCompletionRequest,
    CreateChatAndCompletionResponse,
    CreateCompletionRequest,
    CreateCompletionResponse,
    DeleteChatsRequest,
    DeleteChatsResponse,
    DeleteCompletionsRequest,
    DeleteCompletionsResponse,
    Empty,
    GetChatCompletionRequest,
    GetChatSessionsRequest,
    GetChatSessionsResponse,
    GetCompletionsWithDeepResearcherEntryResponse,
    GetDeepResearcherJobRequest,
    GetDeepResearcherJobResponse,
    GetStoredChatCompletionsRequest,
    GetStoredChatCompletionsResponse,
    Message,
    SearchChatIdsByPromptAndCompletionTextRequest,
    SearchChatIdsByPromptAndCompletionTextResponse,
    StoredChatCompletion,
    SubmitDeepResearcherJobResponse,
    UpdateChatAttributesRequest,
    UpdateChatAttributesResponse,
    UpdateCompletionAttributesRequest,
    UpdateCompletionAttributesResponse,
    WebRetrievalRequest,
    WebRetrievalResponse,
)


@runtime_checkable
class ApexClient(Protocol):
    """An Apex service. ``timeout`` is the call's deadline in seconds (``None``: no deadline).

    Every method raises ``ApexError`` on failure, and nothing else.
    """

    async def chat_completion(
        self, request: ChatCompletionRequest, *, timeout: float | None = None
    ) -> ChatCompletionResponse: ...

    def chat_completion_stream(
        self, request: ChatCompletionRequest, *, timeout: float | None = None
    ) -> AsyncIterator[ChatCompletionChunkResponse]: ...

    async def web_retrieval(
        self, request: WebRetrievalRequest, *, timeout: float | None = None
    ) -> WebRetrievalResponse: ...

    async def submit_deep_researcher_job(
        self, request: ChatCompletionRequest, *, timeout: float | None = None
    ) -> SubmitDeepResearcherJobResponse: ...

    async def get_deep_researcher_job(
        self, request: GetDeepResearcherJobRequest, *, timeout: float | None = None
    ) -> GetDeepResearcherJobResponse: ...

    async def get_chat_sessions(
        self, request: GetChatSessionsRequest, *, timeout: float | None = None
    ) -> GetChatSessionsResponse: ...

    async def get_stored_chat_completions(
        self, request: GetStoredChatCompletionsRequest, *, timeout: float | None = None
    ) -> GetStoredChatCompletionsResponse: ...

    async def get_chat_completion(
        self, request: GetChatCompletionRequest, *, timeout: float | None = None
    ) -> StoredChatCompletion: ...

    async def update_chat_attributes(
        self, request: UpdateChatAttributesRequest, *, timeout: float | None = None
    ) -> UpdateChatAttributesResponse: ...

    async def delete_chats(
        self, request: DeleteChatsRequest, *, timeout: float | None = None
    ) -> DeleteChatsResponse: ...

    async def create_chat_and_completion(
        self, request: CreateChatAndCompletionRequest, *, timeout: float | None = None
    ) -> CreateChatAndCompletionResponse: ...

    async def create_completion(
        self, request: CreateCompletionRequest, *, timeout: float | None = None
    ) -> CreateCompletionResponse: ...

    async def delete_completions(
        self, request: DeleteCompletionsRequest, *, timeout: float | None = None
    ) -> DeleteCompletionsResponse: ...

    async def search_chat_ids_by_prompt_and_completion_text(
        self,
        request: SearchChatIdsByPromptAndCompletionTextRequest,
        *,
        timeout: float | None = None,
    ) -> SearchChatIdsByPromptAndCompletionTextResponse: ...

    async def update_completion_attributes(
        self, request: UpdateCompletionAttributesRequest, *, timeout: float | None = None
    ) -> UpdateCompletionAttributesResponse: ...

    async def get_completions_with_deep_researcher_entry(
        self, request: Empty, *, timeout: float | None = None
    ) -> GetCompletionsWithDeepResearcherEntryResponse: ...


@dataclass(frozen=True)
class Rpc:
    """One method of the service, as the wire sees it."""

    name: str  # the wire name, e.g. "ChatCompletion"
    attr: str  # the ApexClient method, e.g. "chat_completion"
    request: type[Message]
    response: type[Message]
    streaming: bool = False
    read_only: bool = False  # safe to retry: Get*, Search*, WebRetrieval

    @property
    def path(self) -> str:
        return f"/{SERVICE}/{self.name}"

    def deadline_exceeded(self) -> ApexError:
        """The error of a call of this method that did not end within its deadline."""
        return ApexError(Code.DEADLINE_EXCEEDED, f"{self.name} did not finish before its deadline")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Built from the table scripts/gen_proto.py writes from apex.proto: the proto says which
# methods there are; the models module holds each message's pydantic model under its name.
RPCS: dict[str, Rpc] = {
    method.name: Rpc(
        method.name,
        _snake(method.name),
        getattr(models, method.request),
        getattr(models, method.response),
        streaming=method.streaming,
        read_only=method.read_only,
    )
    for method in METHODS
}


@runtime_checkable
class CancelsResearch(Protocol):
    """An Apex service that can stop a deep research job (beyond apex.v1)."""

    async def cancel_deep_researcher_job(self, job_id: str) -> GetDeepResearcherJobResponse: ...


@runtime_checkable
class FiltersSearch(Protocol):
    """An Apex service whose web retrieval takes ``SearchFilters`` (beyond apex.v1) and
    enforces them on the pages it returns."""

    async def web_retrieval_filtered(
        self, request: models.WebRetrievalRequest, filters: models.SearchFilters
    ) -> models.WebRetrievalResponse: ...


@runtime_checkable
class FiltersResearch(Protocol):
    """An Apex service whose deep research takes ``SearchFilters`` (beyond apex.v1) for
    every search of the job, wherever the job runs."""

    async def submit_deep_researcher_job_filtered(
        self, request: models.ChatCompletionRequest, filters: models.SearchFilters
    ) -> models.SubmitDeepResearcherJobResponse: ...


@runtime_checkable
class PagesChats(Protocol):
    """An Apex service that reads a user's chats a page at a time and one by id (beyond
    apex.v1, whose listings are whole): each call costs about one page, however many chats
    the user has.

    A cursor is the ``next_cursor`` of the same listing's previous page, opaque and bound to
    the user and the listing (chat type, search term); any other is ``INVALID_ARGUMENT``.
    """

    async def list_chats_page(
        self, *, chat_type: str | None = None, cursor: str | None = None, limit: int = 20
    ) -> ChatPage:
        """The chats, newest first (the order of GetChatSessions), only those of
        ``chat_type`` if given. Each chat that exists throughout the paging comes exactly
        once, whatever is created or updated between pages."""
        ...

    async def get_chat(self, chat_id: str) -> ChatSession:
        """The chat; ``NOT_FOUND`` when the user has none with that id."""
        ...

    async def search_chats_page(
        self, search_term: str, *, cursor: str | None = None, limit: int = 20
    ) -> ChatPage:
        """The chats SearchChatIdsByPromptAndCompletionText finds for ``search_term``, with
        their titles, the chat with the newest matching completion first."""
        ...


@runtime_checkable
class RecordsChats(Protocol):
    """An Apex service that creates a chat whose first completion already holds metadata, in
    one write (apex.v1 needs CreateChatAndCompletion, then UpdateCompletionAttributes)."""

    async def create_chat_with_metadata(
        self, request: CreateChatAndCompletionRequest, metadata: dict[str, Any] | None
    ) -> CreateChatAndCompletionResponse: ...


WaitForNews = Callable[[float], Awaitable[None]]


@runtime_checkable
class HearsResearch(Protocol):
    """An Apex service that tells when a deep research job may have news (beyond apex.v1,
    whose clients ask GetDeepResearcherJob again and again)."""

    def research_news(self, job_id: str) -> AbstractAsyncContextManager[WaitForNews]:
        """Watch the job, read it, then ``wait(poll_seconds)``: it returns at the job's next
        change, or after ``poll_seconds`` at most where a change may go unheard."""
        ...


@asynccontextmanager
async def research_news(client: ApexClient, job_id: str) -> AsyncIterator[WaitForNews]:
    """Follow a job: watch it, read it, then ``wait(poll_seconds)`` for news; at once where
    the client tells (``HearsResearch``), else after ``poll_seconds``."""
    if isinstance(client, HearsResearch):
        async with client.research_news(job_id) as wait:
            yield wait
    else:
        yield anyio.sleep
