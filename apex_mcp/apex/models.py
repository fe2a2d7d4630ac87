"""One pydantic model per message of ``apex.v1`` (see ``apex.proto`` beside this file).

The models follow the protobuf JSON mapping, so that what they read and write is what any
Connect or gRPC-gateway peer reads and writes:

- output names are lowerCamelCase; input accepts those and the proto's snake_case names;
- int64 is a JSON string on output and a string or a number on input;
- ``google.protobuf.Timestamp`` is an RFC 3339 string in UTC ending in ``Z``;
- ``google.protobuf.Struct`` is a JSON object; ``Empty`` is ``{}``;
- fields at their default value are left out on output, ``null`` reads as the default,
  unknown fields are ignored;
- proto3 ``optional`` fields (and message fields) default to ``None``, so "not set" stays
  distinguishable from "set to the default" and survives a round trip.

``to_wire`` and ``from_wire`` are the two doors; nothing else should serialize a message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT_TEXT = re.compile(r"^-?\d+$")


def _parse_int64(value: Any) -> Any:
    # Protobuf JSON: int64 arrives as a decimal string or a number; floats only when integral.
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, str):
        text = value.strip()
        if not _INT_TEXT.match(text):
            raise ValueError(f"expected an integer, got {value[:40]!r}")
        value = int(text)
    elif isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value}")
        value = int(value)
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError("integer out of the int64 range")
    return value


def _parse_timestamp(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        # Python 3.11 reads at most 6 fractional digits; protobuf may send 9.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"expected an RFC 3339 timestamp, got {value[:40]!r}") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    raise ValueError("expected an RFC 3339 timestamp string")


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with ``Z`` and 0, 3 or 6 fractional digits, as protobuf writes it."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = value.microsecond
    if micros:
        text += f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    return text + "Z"


Int64 = Annotated[
    int,
    BeforeValidator(_parse_int64),
    PlainSerializer(str, return_type=str, when_used="json"),
]
"""A protobuf int64: a string in JSON, an ``int`` in Python."""

Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A ``google.protobuf.Timestamp``: an aware UTC ``datetime`` in Python."""

Struct = dict[str, Any]
"""A ``google.protobuf.Struct``: any JSON object."""


class Message(BaseModel):
    """Base of every apex.v1 message: the protobuf JSON mapping lives here, once."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
        defer_build=True,  # most messages are never used in a given process: build on first use
        ser_json_inf_nan="strings",
    )

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    def to_wire(self) -> dict[str, Any]:
        """The protobuf JSON object of this message."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        """Read a protobuf JSON object (already decoded). Raises ``pydantic.ValidationError``."""
        return cls.model_validate(data)


# --- chat completions -----------------------------------------------------------------------


class ChatMessage(Message):
    role: str = ""
    content: str = ""


class SamplingParameters(Message):
    temperature: float = 0.0
    top_p: float = 0.0
    top_k: float | None = None
    max_new_tokens: Int64 = 0
    do_sample: bool = False


class ChatCompletionRequest(Message):
    uids: list[Int64] = Field(default_factory=list)  # deprecated by Apex; ignored
    messages: list[ChatMessage] = Field(default_factory=list)
    seed: Int64 | None = None
    task: str | None = None
    model: str | None = None
    test_time_inference: bool | None = None
    mixture: bool | None = None
    sampling_parameters: SamplingParameters | None = None
    inference_mode: str | None = None
    json_format: bool | None = None
    stream: bool | None = None
    timeout: Int64 | None = None


class Annotation(Message):
    content: str = ""
    role: str = ""


class ChatCompletionAudio(Message):
    id: str = ""
    data: str = ""
    expires_at: Int64 = 0
    transcript: str = ""


class FunctionCall(Message):
    arguments: list[str] = Field(default_factory=list)
    name: str = ""


class Function(Message):
    arguments: list[str] = Field(default_factory=list)
    name: str = ""


class ChatCompletionMessageToolCall(Message):
    id: str = ""
    function: Function | None = None
    type: str = ""


class ChatCompletionMessage(Message):
    content: str = ""
    refusal: str = ""
    role: str = ""
    annotations: list[Annotation] = Field(default_factory=list)
    audio: ChatCompletionAudio | None = None
    function_call: FunctionCall | None = None
    tool_calls: list[ChatCompletionMessageToolCall] = Field(default_factory=list)


class TopLogprob(Message):
    token: str = ""
    bytes: list[Int64] = Field(default_factory=list)
    logprob: float = 0.0


class ChatCompletionTokenLogprob(Message):
    token: str = ""
    bytes: list[Int64] = Field(default_factory=list)
    logprob: float = 0.0
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(Message):
    content: list[ChatCompletionTokenLogprob] = Field(default_factory=list)
    refusal: list[ChatCompletionTokenLogprob] = Field(default_factory=list)


class Choice(Message):
    finish_reason: str = ""
    index: Int64 = 0
    logprobs: ChoiceLogprobs | None = None
    message: ChatCompletionMessage | None = None


class CompletionTokensDetails(Message):
    accepted_prediction_tokens: Int64 = 0
    audio_tokens: Int64 = 0
    reasoning_tokens: Int64 = 0
    rejected_prediction_tokens: Int64 = 0


class PromptTokensDetails(Message):
    audio_tokens: Int64 = 0
    cached_tokens: Int64 = 0


class CompletionUsage(Message):
    completion_tokens: Int64 = 0
    prompt_tokens: Int64 = 0
    total_tokens: Int64 = 0
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


class ChatCompletionResponse(Message):
    id: str = ""
    choices: list[Choice] = Field(default_factory=list)
    created: Int64 = 0
    model: str = ""
    object: str = ""
    service_tier: str = ""
    system_fingerprint: str = ""
    usage: CompletionUsage | None = None


class ChoiceDeltaFunctionCall(Message):
    arguments: list[str] = Field(default_factory=list)
    name: str = ""


class ChoiceDeltaToolCallFunction(Message):
    arguments: list[str] = Field(default_factory=list)
    name: str = ""


class ChoiceDeltaToolCall(Message):
    index: Int64 = 0
    id: str = ""
    function: ChoiceDeltaToolCallFunction | None = None
    type: str = ""


class ChoiceDelta(Message):
    content: str = ""
    function_call: ChoiceDeltaFunctionCall | None = None
    refusal: str = ""
    role: str = ""
    tool_calls: list[ChoiceDeltaToolCall] = Field(default_factory=list)


class ChunkChoice(Message):
    delta: ChoiceDelta | None = None
    finish_reason: str = ""
    index: Int64 = 0
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunkResponse(Message):
    id: str = ""
    choices: list[ChunkChoice] = Field(default_factory=list)
    created: Int64 = 0
    model: str = ""
    object: str = ""
    service_tier: str = ""
    system_fingerprint: str = ""
    usage: CompletionUsage | None = None


# --- web retrieval --------------------------------------------------------------------------


class WebRetrievalRequest(Message):
    uids: list[Int64] = Field(default_factory=list)  # deprecated by Apex; ignored
    search_query: str = ""
    n_miners: Int64 | None = None
    n_results: Int64 | None = None
    max_response_time: Int64 | None = None
    timeout: Int64 | None = None


class WebSearchResult(Message):
    url: str = ""
    content: str = ""
    relevant: str = ""


class WebRetrievalResponse(Message):
    results: list[WebSearchResult] = Field(default_factory=list)


# --- deep research --------------------------------------------------------------------------


class SubmitDeepResearcherJobResponse(Message):
    job_id: str = ""
    status: str = ""
    created_at: str = ""
    updated_at: str = ""


class DeepResearcherResultChunk(Message):
    seq_id: Int64 = 0
    chunk: str = ""

    @property
    def text(self) -> str:
        """The chunk's text: ``chunk`` is a JSON list of message deltas
        (``[{"content": ...}]``); a server that sends plain text gets it back as it is."""
        try:
            deltas = json.loads(self.chunk)
        except ValueError:
            return self.chunk
        if not isinstance(deltas, list):
            return self.chunk
        return "".join(str(d.get("content", "")) for d in deltas if isinstance(d, dict))


class GetDeepResearcherJobRequest(Message):
    job_id: str = ""


class GetDeepResearcherJobResponse(Message):
    job_id: str = ""
    status: str = ""
    created_at: str = ""
    updated_at: str = ""
    result: list[DeepResearcherResultChunk] = Field(default_factory=list)
    error: str | None = None

    @property
    def report(self) -> str | None:
        """The final answer: the last chunk of a completed job."""
        return self.result[-1].text if self.status == "completed" and self.result else None


# --- stored chats and completions -----------------------------------------------------------


class ChatSession(Message):
    id: str = ""
    user_id: str = ""
    title: str = ""
    chat_type: str = ""
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class GetChatSessionsRequest(Message):
    chat_type: str = ""


class GetChatSessionsResponse(Message):
    chat_sessions: list[ChatSession] = Field(default_factory=list)


class GetStoredChatCompletionsRequest(Message):
    chat_id: str = ""


class GetChatCompletionRequest(Message):
    completion_id: str = ""


class StoredChatCompletion(Message):
    id: str = ""
    chat_id: str = ""
    completion_type: str = ""
    created_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    user_prompt_text: str = ""
    completion_text: str = ""
    metadata: Struct | None = None
    error_message: str = ""


class GetStoredChatCompletionsResponse(Message):
    chat_completions: list[StoredChatCompletion] = Field(default_factory=list)


class UpdateChatAttributesRequest(Message):
    chat_id: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)


class UpdateChatAttributesResponse(Message):
    chat: ChatSession | None = None


class DeleteChatsRequest(Message):
    chat_ids: list[str] = Field(default_factory=list)


class DeleteChatsResponse(Message):
    success: bool = False


class ParsedChat(Message):
    id: str = ""
    title: str = ""
    created_at: Timestamp | None = None
    chat_type: str = ""


class ParsedCompletion(Message):
    id: str = ""
    chat_id: str = ""
    created_at: Timestamp | None = None
    user_prompt_text: str = ""
    completion_text: str = ""
    completion_type: str = ""
    metadata: Struct | None = None


class CreateChatAndCompletionRequest(Message):
    user_prompt: str = ""
    chat_type: str = ""
    completion_type: str = ""
    title: str | None = None


class CreateChatAndCompletionResponse(Message):
    parsed_chat: ParsedChat | None = None
    parsed_completion: ParsedCompletion | None = None


class CreateCompletionRequest(Message):
    chat_id: str = ""
    user_prompt: str = ""
    completion_type: str = ""


class CreateCompletionResponse(Message):
    parsed_completion: ParsedCompletion | None = None


class DeleteCompletionsRequest(Message):
    completion_ids: list[str] = Field(default_factory=list)


class DeleteCompletionsResponse(Message):
    success: bool = False


class SearchChatIdsByPromptAndCompletionTextRequest(Message):
    search_term: str = ""


class SearchChatIdsByPromptAndCompletionTextResponse(Message):
    chat_ids: list[str] = Field(default_factory=list)


class UpdateCompletionAttributesRequest(Message):
    completion_id: str = ""
    completion_text: str | None = None
    metadata: Struct | None = None
    user_prompt_text: str | None = None


class UpdateCompletionAttributesResponse(Message):
    completion: StoredChatCompletion | None = None


class GetCompletionsWithDeepResearcherEntryResponse(Message):
    completions: list[ParsedCompletion] = Field(default_factory=list)


class Empty(Message):
    """``google.protobuf.Empty``."""


# --- conventions in completion metadata -----------------------------------------------------


RESEARCH_KEY = "deep-researcher"


@dataclass(frozen=True)
class ResearchEntry:
    """The Apex convention linking a stored completion to its deep research job: its metadata's
    ``"deep-researcher"`` entry, ``{"jobId", "status", "createdAt"}``. Keys it does not know
    are kept as they were (``others``), so rewriting an entry loses nothing another client put
    there."""

    job_id: str
    status: str = ""
    created_at: str = ""
    others: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> ResearchEntry | None:
        """The entry of a completion's metadata; None without one that names a job."""
        entry = (metadata or {}).get(RESEARCH_KEY)
        if not isinstance(entry, Mapping):
            return None
        job_id, status, created_at = (entry.get(k) for k in ("jobId", "status", "createdAt"))
        if not isinstance(job_id, str) or not job_id:
            return None
        return cls(
            job_id=job_id,
            status=status if isinstance(status, str) else "",
            created_at=created_at if isinstance(created_at, str) else "",
            others={k: v for k, v in entry.items() if k not in _RESEARCH_FIELDS},
        )

    def to_metadata(self, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``metadata`` (a copy; empty if None) holding this entry."""
        entry: dict[str, Any] = {**self.others, "jobId": self.job_id}
        if self.status:
            entry["status"] = self.status
        if self.created_at:
            entry["createdAt"] = self.created_at
        return {**(metadata or {}), RESEARCH_KEY: entry}

    def with_status(self, status: str) -> ResearchEntry:
        return replace(self, status=status)


_RESEARCH_FIELDS = frozenset({"jobId", "status", "createdAt"})


# --- beyond apex.v1 -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatPage:
    """One page of a user's chats, and the opaque cursor of the next page (None: it is the
    last). Not an apex.v1 message: the Apex RPCs have no paging (see ``client.PagesChats``)."""

    chats: list[ChatSession]
    next_cursor: str | None = None


# --- search filters (beyond apex.v1) ---------------------------------------------------------

Recency = Literal["day", "week", "month", "year"]
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_DOMAIN = re.compile(rf"^(\*\.)?{_LABEL}(?:\.{_LABEL})*$")


@dataclass(frozen=True)
class SearchFilters:
    """What a web search may return, enforced on the results (not only asked of the search
    engine): pages of ``include_domains`` only, if any, none of ``exclude_domains``, and
    pages the search engine dates within ``recency``.

    A domain ``example.com`` is that host and its subdomains (``www.example.com``);
    ``*.example.com`` its subdomains only. ``example.com.evil.net`` and ``notexample.com``
    are other domains.
    """

    include_domains: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()
    recency: Recency | None = None

    @classmethod
    def of(
        cls,
        include_domains: list[str] | None = None,
        exclude_domains: list[str] | None = None,
        recency: Recency | None = None,
    ) -> SearchFilters:
        """Filters from a caller's lists; ``ValueError`` names a domain that is not one."""
        return cls(
            tuple(_domain(d, "include_domains") for d in include_domains or ()),
            tuple(_domain(d, "exclude_domains") for d in exclude_domains or ()),
            recency,
        )

    def __bool__(self) -> bool:
        return bool(self.include_domains or self.exclude_domains or self.recency)

    def to_json(self) -> dict[str, Any]:
        """The filters as a JSON object (what ``of(**...)`` reads back)."""
        return {
            "include_domains": list(self.include_domains),
            "exclude_domains": list(self.exclude_domains),
            "recency": self.recency,
        }

    def allows(self, url: str) -> bool:
        """Whether a page at ``url`` passes the domain filters."""
        try:
            host = (urlsplit(url.strip()).hostname or "").rstrip(".").lower()
        except ValueError:
            return False
        if not host:
            return False
        if any(_matches(host, d) for d in self.exclude_domains):
            return False
        return not self.include_domains or any(_matches(host, d) for d in self.include_domains)


def _domain(text: str, field_name: str) -> str:
    domain = text.strip().lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise ValueError(
            f"{field_name}: {text!r} is not a domain: give a host name such as example.com, "
            "or *.example.com for its subdomains only"
        )
    return domain


def _matches(host: str, domain: str) -> bool:
    if domain.startswith("*."):
        return host.endswith(domain[1:])  # ".example.com": a subdomain, never the look-alike
    return host == domain or host.endswith("." + domain)
