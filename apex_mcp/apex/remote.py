"""RemoteApex: the ApexClient contract over the Connect protocol (JSON, HTTP/2)."""

from __future__ import annotations

import logging
import os
import random
import uuid
from collections.abc import AsyncIterator
from typing import TypeVar

import anyio
import httpx2
from pydantic import SecretStr

from .. import __version__
from .._http import LazyClient
from . import connect
from .client import RPCS, Rpc
from .errors import ApexError, Code
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

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

DEFAULT_BASE_URL = "https://constellation.api.cloud.macrocosmos.ai"
DEFAULT_TIMEOUT = 300.0  # seconds; chat and research calls can be long
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
UNREACHABLE_HINT = "check APEX_BASE_URL and that the Apex server there runs; try again shortly"
RETRYABLE = frozenset({Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED})


def resolve_api_key(api_key: str | SecretStr | None = None) -> SecretStr | None:
    """The key from the argument, else ``APEX_API_KEY``, else ``MACROCOSMOS_API_KEY``."""
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    key = api_key or os.environ.get("APEX_API_KEY") or os.environ.get("MACROCOSMOS_API_KEY")
    return SecretStr(key) if key else None


def resolve_base_url(base_url: str | None = None) -> str:
    url = (
        base_url
        or os.environ.get("APEX_BASE_URL")
        or os.environ.get("MACROCOSMOS_BASE_URL")
        or DEFAULT_BASE_URL
    )
    if "://" not in url:
        url = "https://" + url
    return url.rstrip("/")


class RemoteApex:
    """An Apex server reached over the wire.

    ``http://`` URLs speak HTTP/2 with prior knowledge (h2c), as a local gateway does;
    ``https://`` negotiates HTTP/2 with ALPN. ``timeout`` is the default deadline of a call.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | SecretStr | None = None,
        *,
        app_name: str = "apex-mcp",
        timeout: float | None = DEFAULT_TIMEOUT,
        max_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        http2: bool = True,
        verify: bool = True,
        public_only: bool = False,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self._api_key = resolve_api_key(api_key)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._app_name = app_name
        self._http2 = http2
        self._verify = verify
        # Whether the server said it keeps the replies to keyed writes (a gateway does).
        self._server_keeps_replies = False
        self._public_only = public_only  # connect only to public addresses (hosted sessions)
        self._http = LazyClient(self._new_http)

    def _new_http(self) -> httpx2.AsyncClient:
        headers = {
            "connect-protocol-version": connect.PROTOCOL_VERSION,
            "x-source": self._app_name,
            "x-client-id": "apex-mcp",
            "x-client-version": __version__,
            "user-agent": f"apex-mcp/{__version__}",
        }
        if self._api_key is not None:
            headers["authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        timeout = self.timeout
        cleartext = self.base_url.startswith("http://")
        limits = httpx2.Limits(max_connections=64, max_keepalive_connections=16)
        return httpx2.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            http2=self._http2,
            http1=not (self._http2 and cleartext),  # h2c needs prior knowledge
            verify=self._verify,
            timeout=httpx2.Timeout(timeout, connect=min(timeout or 10.0, 10.0)),
            limits=limits,
            trust_env=True,
            transport=self._public_transport(limits, http1=not (self._http2 and cleartext)),
        )

    def _public_transport(
        self, limits: httpx2.Limits, *, http1: bool
    ) -> httpx2.AsyncHTTPTransport | None:
        """With ``public_only``, a transport whose every connection is checked as it is made;
        else None (httpx2's own)."""
        if not self._public_only:
            return None
        from ..netguard import public_transport

        return public_transport(http2=self._http2, http1=http1, verify=self._verify, limits=limits)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"RemoteApex(base_url={self.base_url!r}, api_key={key})"

    @property
    def has_api_key(self) -> bool:
        return self._api_key is not None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> RemoteApex:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the contract -----------------------------------------------------------------------

    async def chat_completion(
        self, request: ChatCompletionRequest, *, timeout: float | None = None
    ) -> ChatCompletionResponse:
        return await self._unary("ChatCompletion", request, ChatCompletionResponse, timeout)

    async def chat_completion_stream(
        self, request: ChatCompletionRequest, *, timeout: float | None = None
    ) -> AsyncIterator[ChatCompletionChunkResponse]:
        async for chunk in self._stream(RPCS["ChatCompletionStream"], request, timeout):
            yield chunk

    async def web_retrieval(
        self, request: WebRetrievalRequest, *, timeout: float | None = None
    ) -> WebRetrievalResponse:
        response = await self._unary("WebRetrieval", request, WebRetrievalResponse, timeout)
        # The hosted service answered one empty result when every miner failed.
        response.results = [r for r in response.results if r.url.strip()]
        return response

    async def submit_deep_researcher_job(
        self, request: ChatCompletionRequest, *, timeout: float | None = None
    ) -> SubmitDeepResearcherJobResponse:
        return await self._unary(
            "SubmitDeepResearcherJob", request, SubmitDeepResearcherJobResponse, timeout
        )

    async def get_deep_researcher_job(
        self, request: GetDeepResearcherJobRequest, *, timeout: float | None = None
    ) -> GetDeepResearcherJobResponse:
        return await self._unary(
            "GetDeepResearcherJob", request, GetDeepResearcherJobResponse, timeout
        )

    async def get_chat_sessions(
        self, request: GetChatSessionsRequest, *, timeout: float | None = None
    ) -> GetChatSessionsResponse:
        return await self._unary("GetChatSessions", request, GetChatSessionsResponse, timeout)

    async def get_stored_chat_completions(
        self, request: GetStoredChatCompletionsRequest, *, timeout: float | None = None
    ) -> GetStoredChatCompletionsResponse:
        return await self._unary(
            "GetStoredChatCompletions", request, GetStoredChatCompletionsResponse, timeout
        )

    async def get_chat_completion(
        self, request: GetChatCompletionRequest, *, timeout: float | None = None
    ) -> StoredChatCompletion:
        return await self._unary("GetChatCompletion", request, StoredChatCompletion, timeout)

    async def update_chat_attributes(
        self, request: UpdateChatAttributesRequest, *, timeout: float | None = None
    ) -> UpdateChatAttributesResponse:
        return await self._unary(
            "UpdateChatAttributes", request, UpdateChatAttributesResponse, timeout
        )

    async def delete_chats(
        self, request: DeleteChatsRequest, *, timeout: float | None = None
    ) -> DeleteChatsResponse:
        return await self._unary("DeleteChats", request, DeleteChatsResponse, timeout)

    async def create_chat_and_completion(
        self, request: CreateChatAndCompletionRequest, *, timeout: float | None = None
    ) -> CreateChatAndCompletionResponse:
        return await self._unary(
            "CreateChatAndCompletion", request, CreateChatAndCompletionResponse, timeout
        )

    async def create_completion(
        self, request: CreateCompletionRequest, *, timeout: float | None = None
    ) -> CreateCompletionResponse:
        return await self._unary("CreateCompletion", request, CreateCompletionResponse, timeout)

    async def delete_completions(
        self, request: DeleteCompletionsRequest, *, timeout: float | None = None
    ) -> DeleteCompletionsResponse:
        return await self._unary("DeleteCompletions", request, DeleteCompletionsResponse, timeout)

    async def search_chat_ids_by_prompt_and_completion_text(
        self,
        request: SearchChatIdsByPromptAndCompletionTextRequest,
        *,
        timeout: float | None = None,
    ) -> SearchChatIdsByPromptAndCompletionTextResponse:
        return await self._unary(
            "SearchChatIdsByPromptAndCompletionText",
            request,
            SearchChatIdsByPromptAndCompletionTextResponse,
            timeout,
        )

    async def update_completion_attributes(
        self, request: UpdateCompletionAttributesRequest, *, timeout: float | None = None
    ) -> UpdateCompletionAttributesResponse:
        return await self._unary(
            "UpdateCompletionAttributes", request, UpdateCompletionAttributesResponse, timeout
        )

    async def get_completions_with_deep_researcher_entry(
        self, request: Empty, *, timeout: float | None = None
    ) -> GetCompletionsWithDeepResearcherEntryResponse:
        return await self._unary(
            "GetCompletionsWithDeepResearcherEntry",
            request,
            GetCompletionsWithDeepResearcherEntryResponse,
            timeout,
        )

    # --- the wire ---------------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float | None:
        timeout = self.timeout if timeout is None else timeout
        return None if timeout is None else anyio.current_time() + timeout

    def _headers(
        self, deadline: float | None, body: bytes, *, streaming: bool, key: str | None = None
    ) -> dict[str, str]:
        headers = {
            "content-type": connect.STREAM_CONTENT_TYPE if streaming else connect.UNARY_CONTENT_TYPE
        }
        if key is not None:
            headers[connect.IDEMPOTENCY_KEY_HEADER] = key
        if streaming:
            headers["connect-accept-encoding"] = "gzip"
            if len(body) >= connect.COMPRESS_MIN_BYTES:
                headers["connect-content-encoding"] = "gzip"
        else:
            headers["accept-encoding"] = "gzip"
            if len(body) >= connect.COMPRESS_MIN_BYTES:
                headers["content-encoding"] = "gzip"
        if deadline is not None:
            headers["connect-timeout-ms"] = connect.format_timeout(
                max(0.001, deadline - anyio.current_time())
            )
        return headers

    async def _unary(
        self, name: str, request: Message, response_type: type[M], timeout: float | None
    ) -> M:
        rpc = RPCS[name]
        body = connect.encode_message(request)
        deadline = self._deadline(timeout)
        # One key for the logical call, on every try: the server does the write once.
        key = uuid.uuid4().hex if rpc.name in connect.KEYED_RPCS else None
        attempt = 0
        while True:
            try:
                return await self._unary_once(rpc, body, response_type, deadline, key)
            except ApexError as error:
                delay = self._retry_delay(rpc, error, attempt, deadline)
                if delay is None:
                    raise self._redacted(error) from None
                log.info("apex %s: %s; retrying in %.2fs", rpc.name, error.code.value, delay)
                await anyio.sleep(delay)
                attempt += 1

    def _retry_delay(
        self, rpc: Rpc, error: ApexError, attempt: int, deadline: float | None
    ) -> float | None:
        """Seconds to wait before retrying, or None when the call must not be retried: reads;
        writes with an idempotency key when the connection was lost (the server may have done
        the write and only its reply was lost: it answers the retry with that reply)."""
        # A write whose request may have reached the server goes again only to a server that
        # answers the retry with the first reply (not just a second write).
        resend = isinstance(error, _ConnectionLost) and (
            not error.maybe_sent or self._server_keeps_replies
        )
        safe = rpc.read_only or (rpc.name in connect.KEYED_RPCS and resend)
        if not safe or error.code not in RETRYABLE or attempt >= self.max_retries:
            return None
        if error.retry_after is not None:
            delay = error.retry_after
        else:  # exponential backoff with full jitter
            delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
        if deadline is not None and anyio.current_time() + delay >= deadline:
            return None
        return delay

    async def _unary_once(
        self,
        rpc: Rpc,
        body: bytes,
        response_type: type[M],
        deadline: float | None,
        key: str | None = None,
    ) -> M:
        headers = self._headers(deadline, body, streaming=False, key=key)
        content = connect.gzip_compress(body) if "content-encoding" in headers else body
        remaining = None if deadline is None else deadline - anyio.current_time()
        if remaining is not None and remaining <= 0:
            raise rpc.deadline_exceeded()
        with anyio.move_on_after(remaining) as scope:
            try:
                response = await self._http().post(
                    rpc.path, content=content, headers=headers, timeout=remaining
                )
            except httpx2.TimeoutException:
                raise rpc.deadline_exceeded() from None
            except httpx2.TransportError as exc:
                raise self._broken(exc) from None
        if scope.cancelled_caught:
            raise rpc.deadline_exceeded()
        if connect.KEEPS_REPLIES_HEADER in response.headers:
            self._server_keeps_replies = True
        if response.status_code != 200:
            raise connect.error_from_http(response.status_code, response.content, response.headers)
        try:
            return connect.decode_message(response_type, response.content)
        except ApexError as exc:
            raise ApexError(
                Code.INTERNAL, f"the server sent a malformed {rpc.name} answer: {exc.message}"
            ) from None

    async def _stream(
        self, rpc: Rpc, request: Message, timeout: float | None
    ) -> AsyncIterator[ChatCompletionChunkResponse]:
        body = connect.encode_message(request)
        deadline = self._deadline(timeout)
        headers = self._headers(deadline, body, streaming=True)
        envelope = connect.pack_envelope(body, compress="connect-content-encoding" in headers)
        reader = connect.EnvelopeReader(MAX_RESPONSE_BYTES)
        try:
            async with self._http().stream(
                "POST", rpc.path, content=envelope, headers=headers, timeout=_remaining(deadline)
            ) as response:
                if connect.KEEPS_REPLIES_HEADER in response.headers:
                    self._server_keeps_replies = True
                if response.status_code != 200:
                    await response.aread()
                    raise connect.error_from_http(
                        response.status_code, response.content, response.headers
                    )
                if not response.headers.get("content-type", "").startswith(
                    connect.STREAM_CONTENT_TYPE
                ):
                    raise ApexError(
                        Code.INTERNAL,
                        f"expected a Connect stream, got {response.headers.get('content-type')!r}",
                    )
                async for data in response.aiter_bytes():
                    for flags, payload in reader.feed(data):
                        if flags & connect.FLAG_END_STREAM:
                            error = connect.parse_end_stream(payload)
                            if error is not None:
                                raise error
                            return
                        try:
                            yield connect.decode_message(rpc.response, payload)  # type: ignore[misc]
                        except ApexError as exc:
                            raise ApexError(
                                Code.INTERNAL, f"the server sent a malformed chunk: {exc.message}"
                            ) from None
                    if deadline is not None and anyio.current_time() > deadline:
                        raise rpc.deadline_exceeded()
        except httpx2.TimeoutException:
            raise rpc.deadline_exceeded() from None
        except httpx2.TransportError as exc:
            raise self._broken(exc, mid_stream=True) from None
        except ApexError as error:
            raise self._redacted(error) from None
        raise ApexError(
            Code.UNAVAILABLE, "the stream was cut before it finished; the answer is incomplete"
        )

    def _broken(self, exc: Exception, *, mid_stream: bool = False) -> ApexError:
        if self._public_only:  # a hosted session's server: it must be a public address
            from ..netguard import refusal

            refused = refusal(exc)
            if refused is not None:
                return ApexError(Code.PERMISSION_DENIED, f"the Apex server's address was {refused}")
        where = "mid-stream" if mid_stream else f"reaching {self.base_url}"
        lost = _ConnectionLost(
            Code.UNAVAILABLE,
            f"the connection failed {where} ({type(exc).__name__})",
            hint=UNREACHABLE_HINT,
        )
        lost.maybe_sent = not isinstance(exc, httpx2.ConnectError)  # no connection: not sent
        return lost

    def _redacted(self, error: ApexError) -> ApexError:
        # A server may echo what it was sent; the key must not travel on in our errors.
        if self._api_key is None:
            return error
        return error.redacted(self._api_key.get_secret_value())


class _ConnectionLost(ApexError):
    """``unavailable`` because the connection failed: if ``maybe_sent``, the request may have
    been served and only its reply lost."""

    maybe_sent = True


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.001, deadline - anyio.current_time())
