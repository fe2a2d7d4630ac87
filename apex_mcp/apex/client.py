"""The Apex contract: ``ApexClient``, one async method per RPC of ``apex.v1.ApexService``.

RemoteApex (the wire) and LocalApex (the embedded engine) implement it; the wire server serves
any implementation of it. ``RPCS`` describes every method, as apex.proto declares it, for the
code that has to treat them generically (the wire server, the remote client's retry policy,
tests).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from . import models
from .errors import ApexError, Code
from .gen.apex_methods import METHODS
from .gen.apex_methods import SERVICE as SERVICE
from .models import (
    ChatCompletionChunkResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
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
