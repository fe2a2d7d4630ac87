"""The OpenAI-compatible wire: one call to one miner, and what may come back.

A request becomes an OpenAI ``/chat/completions`` body; the answer, whole or as server-sent
events, becomes Apex messages. What a miner sends is bounded as it arrives (an SSE line or
event, a non-streamed body: ``MAX_MESSAGE_BYTES``; an answer: ``MAX_ANSWER_CHARS``, the
contract's limit of a completion), so that no answer can run the server out of memory. A
miner that fails raises ``MinerFailure``, whose text never holds a key; which miner to call,
and what to do when one fails, is the pool's (``miners.py``).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..apex.models import (
    ChatCompletionChunkResponse,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
)
from .config import MinerConfig

MIB = 1024 * 1024
# A JSON document from a miner (an SSE line or event, a non-streamed answer): the largest
# answer, 1M characters, fits even as UTF-8 of up to 4 bytes a character, with room to spare.
MAX_MESSAGE_BYTES = 8 * MIB
MAX_ANSWER_CHARS = 1_000_000  # of a completion's text: the contract's limit
MAX_ERROR_BYTES = 64 * 1024  # of an error's body: only its message is used
MAX_HELD_CHUNKS = 16  # chunks without text held back before the first text, at most
MAX_RETRY_AFTER = 24 * 3600.0  # a miner's Retry-After beyond a day is taken as a day

# What is wrong with a miner, for ``doctor`` to say what to do about it.
Problem = Literal[
    "no_key",  # it needs a key and none is set
    "key_refused",  # HTTP 401 or 403
    "unreachable",  # nothing answers at its address
    "timeout",
    "connection",  # the connection failed otherwise (TLS, a proxy, a reset)
    "not_found",  # HTTP 404: not an OpenAI-compatible API root
    "rate_limited",  # HTTP 429
    "server_error",  # HTTP 5xx
    "malformed",  # it answered, but not as an OpenAI-compatible API does
    "http",  # another HTTP status
    "model_missing",  # it answers, and does not list a model it was configured with
    "no_models",  # it answers, and lists no model at all
]


class MinerFailure(Exception):
    """One miner failed; another may still answer. Its text never holds a key."""

    def __init__(
        self, miner: str, reason: str, *, rejected: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{miner}: {reason}")
        self.miner = miner
        self.reason = reason
        self.rejected = rejected  # the miner called the request itself bad (400, 413, 422)
        self.retry_after = retry_after  # seconds until it said it would answer again


def auth_headers(miner: MinerConfig) -> dict[str, str]:
    """The headers that authenticate a call to ``miner``; MinerFailure when its key is unset."""
    headers: dict[str, str] = {}
    key = miner.resolved_api_key()
    if key is not None:
        headers["authorization"] = f"Bearer {key.get_secret_value()}"
    elif miner.api_key_env:
        raise MinerFailure(miner.name, f"no API key: set {miner.api_key_env}")
    elif miner.basic_auth is not None:
        token = base64.b64encode(miner.basic_auth.get_secret_value().encode()).decode()
        headers["authorization"] = f"Basic {token}"
    return headers


async def complete(
    http: httpx2.AsyncClient,
    miner: MinerConfig,
    model: str | None,
    request: ChatCompletionRequest,
    headers: dict[str, str],
) -> ChatCompletionResponse:
    """``miner``'s whole answer to ``request``, within ``miner.timeout``."""
    body = _openai_body(request, miner, model, stream=False)
    content: bytes | None = None
    # httpx's timeout is per read; this bounds the whole answer, however slowly it drips.
    with anyio.move_on_after(miner.timeout):
        try:
            async with _post_completion(http, miner, body, headers) as response:
                content = await _read_body(miner, response, MAX_MESSAGE_BYTES)
        except httpx2.TimeoutException:
            pass
        except httpx2.HTTPError as exc:
            raise _transport_failure(miner, exc) from None
    if content is None:
        raise MinerFailure(miner.name, f"no answer within {miner.timeout:g}s")
    return _parse_completion(miner, model, content)


async def stream(
    http: httpx2.AsyncClient,
    miner: MinerConfig,
    model: str | None,
    request: ChatCompletionRequest,
    headers: dict[str, str],
) -> AsyncGenerator[ChatCompletionChunkResponse, None]:
    """``miner``'s answer to ``request`` as it comes, waiting at most ``miner.timeout`` for
    each piece of it."""
    body = _openai_body(request, miner, model, stream=True)
    defaults = _ChunkDefaults(model)
    # Chunks without text (the opening role chunk) are held back until text comes, so that
    # a stream which breaks before saying anything can still fall back to another miner.
    held: list[ChatCompletionChunkResponse] = []
    done = finished = speaking = False
    said = 0  # characters of the answer so far
    try:
        async with (
            _post_completion(http, miner, body, headers) as response,
            aclosing(_sse_data(miner, response)) as events,
        ):
            while True:
                # Only data counts as answering: keep-alives do not hold the wait open.
                data: str | None = None
                with anyio.move_on_after(miner.timeout) as idle:
                    data = await anext(events, None)
                if idle.cancelled_caught:
                    raise httpx2.ReadTimeout("no data")
                if data is None:
                    break
                if data.strip() == "[DONE]":
                    done = True
                    break
                chunk = _parse_chunk(miner, defaults, data)
                finished = finished or any(c.finish_reason for c in chunk.choices)
                said += _text_length(chunk)
                if said > MAX_ANSWER_CHARS:
                    raise MinerFailure(miner.name, _TOO_LONG)
                if _has_text(chunk):
                    speaking = True
                elif not speaking and len(held) >= MAX_HELD_CHUNKS:
                    # Bounded, whatever a miner sends before its text: empty chunks
                    # go; others push out one from the middle, so that the first ones
                    # (the role) and the last (finish, usage) stay.
                    if not _carries_nothing(chunk):
                        del held[MAX_HELD_CHUNKS // 2]
                        held.append(chunk)
                    continue
                held.append(chunk)
                if speaking:
                    for ready in held:
                        yield ready
                    held.clear()
    except httpx2.TimeoutException:
        raise MinerFailure(
            miner.name, f"stopped answering (nothing for {miner.timeout:g}s)"
        ) from None
    except httpx2.HTTPError as exc:
        raise _transport_failure(miner, exc) from None
    if not (done or finished):
        raise MinerFailure(miner.name, "the stream ended before the answer did")
    for ready in held:
        yield ready


@asynccontextmanager
async def _post_completion(
    http: httpx2.AsyncClient, miner: MinerConfig, body: dict[str, Any], headers: dict[str, str]
) -> AsyncIterator[httpx2.Response]:
    """The answer to ``body`` posted to ``miner``'s ``/chat/completions``, unread, when it is
    200; else ``MinerFailure`` saying why the miner refused it."""
    async with http.stream(
        "POST",
        f"{miner.base_url}/chat/completions",
        json=body,
        headers=headers,
        timeout=_timeout(miner),
    ) as response:
        if response.status_code != 200:
            error = await _read_body(miner, response, MAX_ERROR_BYTES, cut=True)
            raise _refused(miner, response, error)
        yield response


async def list_models(http: httpx2.AsyncClient, miner: MinerConfig, timeout: float) -> list[str]:
    """The models ``miner`` lists (``GET /models``)."""
    try:
        async with http.stream(
            "GET", f"{miner.base_url}/models", headers=auth_headers(miner), timeout=timeout
        ) as response:
            limit = MAX_MESSAGE_BYTES if response.status_code == 200 else MAX_ERROR_BYTES
            content = await _read_body(miner, response, limit, cut=response.status_code != 200)
    except httpx2.TimeoutException:
        raise MinerFailure(miner.name, f"no answer within {timeout:g}s") from None
    except httpx2.HTTPError as exc:
        raise _transport_failure(miner, exc) from None
    if response.status_code != 200:
        raise _http_failure(miner, response.status_code, content)
    try:
        data = json.loads(content)["data"]
        return [str(item["id"]) for item in data]
    except (ValueError, KeyError, TypeError):
        raise MinerFailure(miner.name, "malformed model list") from None


def _refused(miner: MinerConfig, response: httpx2.Response, body: bytes) -> MinerFailure:
    failure = _http_failure(miner, response.status_code, body)
    if response.status_code in (429, 503):
        seconds = _retry_after(response.headers.get("retry-after"))
        if seconds is not None and seconds > 0:
            failure = MinerFailure(
                miner.name,
                f"{failure.reason}; it asked not to be called before {clock(seconds)}",
                retry_after=seconds,
            )
    return failure


def problem_of(reason: str) -> Problem:
    """The kind of a failure of ``GET /models``, from the reason this module gave it."""
    status = re.match(r"HTTP (\d+)", reason)
    if status is not None:
        code = int(status.group(1))
        if code in (401, 403):
            return "key_refused"
        if code == 404:
            return "not_found"
        if code == 429:
            return "rate_limited"
        return "server_error" if code >= 500 else "http"
    for start, problem in _REASON_PROBLEMS:
        if reason.startswith(start):
            return problem
    return "malformed"


_REASON_PROBLEMS: tuple[tuple[str, Problem], ...] = (
    ("no API key", "no_key"),
    ("unreachable", "unreachable"),
    ("no answer within", "timeout"),
    ("the connection failed", "connection"),
)


# --- Apex -> OpenAI ---------------------------------------------------------------------------


def _openai_body(
    request: ChatCompletionRequest, miner: MinerConfig, model: str | None, *, stream: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": m.role or "user", "content": m.content} for m in request.messages]
    }
    if model:  # no model: the server answers with its own default
        body["model"] = model
    sampling = request.sampling_parameters
    if sampling is not None:
        # proto3 floats cannot be "unset": 0 means "not given", except that no sampling is greedy.
        if not sampling.do_sample:
            body["temperature"] = 0.0
        elif sampling.temperature > 0:
            body["temperature"] = sampling.temperature
        if sampling.top_p > 0:
            body["top_p"] = sampling.top_p
        if miner.supports_top_k and sampling.top_k is not None and sampling.top_k > 0:
            body["top_k"] = int(sampling.top_k)
        if sampling.max_new_tokens > 0:
            body["max_tokens"] = sampling.max_new_tokens
    if request.seed is not None:
        body["seed"] = request.seed
    if request.json_format:
        body["response_format"] = {"type": "json_object"}
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


# --- OpenAI -> Apex ---------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _WireMessage(_Wire):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None


class _WireChoice(_Wire):
    index: int = 0
    finish_reason: str | None = None
    message: _WireMessage | None = None
    delta: _WireMessage | None = None


class _WireCompletion(_Wire):
    id: str | None = None
    created: float | None = None
    model: str | None = None
    choices: list[_WireChoice] = Field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: Any = None


def _read_wire(miner: MinerConfig, data: str | bytes) -> _WireCompletion:
    try:
        wire = _WireCompletion.model_validate_json(data)
    except ValidationError:
        raise MinerFailure(miner.name, "malformed answer") from None
    if wire.error is not None:  # some servers report errors inside a 200 or a stream
        raise MinerFailure(miner.name, f"error: {_error_text(miner, wire.error)}")
    return wire


def _parse_completion(
    miner: MinerConfig, model: str | None, content: bytes
) -> ChatCompletionResponse:
    wire = _read_wire(miner, content)
    if not wire.choices or any(c.message is None for c in wire.choices):
        raise MinerFailure(miner.name, "malformed answer (no message)")
    said = sum(
        len(c.message.content or "") + len(c.message.refusal or "")
        for c in wire.choices
        if c.message
    )
    if said > MAX_ANSWER_CHARS:
        raise MinerFailure(miner.name, _TOO_LONG)
    return ChatCompletionResponse(
        id=wire.id or _new_id(),
        created=int(wire.created or time.time()),
        model=wire.model or model or "",
        object="chat.completion",
        choices=[
            Choice(
                index=c.index,
                finish_reason=c.finish_reason or "",
                message=ChatCompletionMessage(
                    role=c.message.role or "assistant",
                    content=c.message.content or "",
                    refusal=c.message.refusal or "",
                ),
            )
            for c in wire.choices
            if c.message is not None
        ],
        system_fingerprint=f"miner:{miner.name}",
        usage=_usage(wire.usage),
    )


def _new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


@dataclass
class _ChunkDefaults:
    """What a stream's chunks say where the server is silent: the same for every chunk."""

    model: str | None
    id: str = field(default_factory=_new_id)
    created: int = field(default_factory=lambda: int(time.time()))


def _parse_chunk(
    miner: MinerConfig, defaults: _ChunkDefaults, data: str
) -> ChatCompletionChunkResponse:
    wire = _read_wire(miner, data)
    return ChatCompletionChunkResponse(
        id=wire.id or defaults.id,
        created=int(wire.created or defaults.created),
        model=wire.model or defaults.model or "",
        object="chat.completion.chunk",
        choices=[
            ChunkChoice(
                index=c.index,
                finish_reason=c.finish_reason or "",
                delta=ChoiceDelta(
                    role=c.delta.role or "",
                    content=c.delta.content or "",
                    refusal=c.delta.refusal or "",
                )
                if c.delta is not None
                else None,
            )
            for c in wire.choices
        ],
        system_fingerprint=f"miner:{miner.name}",
        usage=_usage(wire.usage),
    )


async def _sse_lines(miner: MinerConfig, response: httpx2.Response) -> AsyncGenerator[str, None]:
    """The lines of a stream (ended by CRLF, LF or CR), none longer than ``MAX_MESSAGE_BYTES``:
    a line is refused while it arrives, not once it is all in memory."""
    buffer = bytearray()
    async for piece in response.aiter_bytes():
        buffer += piece
        if b"\n" in piece or b"\r" in piece:
            # A CR at the very end may be half a CRLF: it waits for the next piece.
            cut = len(buffer) - 1 if buffer.endswith(b"\r") else len(buffer)
            text = bytes(buffer[:cut])
            if b"\r" in text:
                text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            *lines, rest = text.split(b"\n")
            del buffer[: cut - len(rest)]
            for line in lines:
                yield line.decode("utf-8", "replace")
        if len(buffer) > MAX_MESSAGE_BYTES:
            raise MinerFailure(miner.name, f"sent an SSE line over {MAX_MESSAGE_BYTES // MIB} MiB")
    if buffer:  # the last line, unended (or a CR's, held back above)
        text = bytes(buffer).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        for line in text.removesuffix(b"\n").split(b"\n"):
            yield line.decode("utf-8", "replace")


async def _sse_data(miner: MinerConfig, response: httpx2.Response) -> AsyncGenerator[str, None]:
    """The ``data`` of each server-sent event (its ``data:`` lines joined)."""
    lines: list[str] = []
    size = 0
    async with aclosing(_sse_lines(miner, response)) as stream:
        async for line in stream:
            if not line:
                if lines:
                    yield "\n".join(lines)
                    lines, size = [], 0
                continue
            name, _, value = line.partition(":")
            if name == "data":
                lines.append(value.removeprefix(" "))
                size += len(lines[-1])
                if size > MAX_MESSAGE_BYTES:
                    raise MinerFailure(
                        miner.name, f"sent an SSE event over {MAX_MESSAGE_BYTES // MIB} MiB"
                    )
            # other fields (event, id, retry) and ": comments" (keep-alives) carry nothing for us
    if lines:
        yield "\n".join(lines)


async def _read_body(
    miner: MinerConfig, response: httpx2.Response, limit: int, *, cut: bool = False
) -> bytes:
    """The body of ``response``, refused once over ``limit`` bytes (with ``cut``: cut there)."""
    declared = response.headers.get("content-length", "")
    if not cut and declared.isdigit() and int(declared) > limit:
        raise MinerFailure(miner.name, _too_big(limit))
    pieces: list[bytes] = []
    size = 0
    async for piece in response.aiter_bytes():
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            if cut:
                break
            raise MinerFailure(miner.name, _too_big(limit))
    return b"".join(pieces)[:limit]


def _too_big(limit: int) -> str:
    return f"answered with over {limit // MIB} MiB, more than an answer may be"


_TOO_LONG = (
    f"its answer went over {MAX_ANSWER_CHARS:,} characters, the limit of a completion; "
    "ask for a shorter one (max_new_tokens)"
)


def _text_length(chunk: ChatCompletionChunkResponse) -> int:
    return sum(
        len(c.delta.content) + len(c.delta.refusal) for c in chunk.choices if c.delta is not None
    )


def _carries_nothing(chunk: ChatCompletionChunkResponse) -> bool:
    """No text, role, finish reason or usage: a chunk the answer loses nothing without."""
    return chunk.usage is None and not any(
        c.finish_reason or (c.delta is not None and (c.delta.role or _has_text_delta(c.delta)))
        for c in chunk.choices
    )


def _has_text_delta(delta: ChoiceDelta) -> bool:
    return bool(delta.content or delta.refusal)


def _has_text(chunk: ChatCompletionChunkResponse) -> bool:
    return any(c.delta is not None and (c.delta.content or c.delta.refusal) for c in chunk.choices)


def _usage(data: dict[str, Any] | None) -> CompletionUsage | None:
    if not data:
        return None
    try:
        return CompletionUsage.model_validate(data)
    except ValidationError:  # odd usage is no reason to throw the answer away
        return None


# --- failures ---------------------------------------------------------------------------------


def _timeout(miner: MinerConfig) -> httpx2.Timeout:
    return httpx2.Timeout(miner.timeout, connect=min(miner.timeout, 10.0))


def _transport_failure(miner: MinerConfig, exc: Exception) -> MinerFailure:
    if isinstance(exc, httpx2.ConnectError):
        from ..netguard import refusal  # not at the top: it loads httpcore2, costly at start-up

        refused = refusal(exc)  # a guarded client (hosted sessions) refused a private address
        return MinerFailure(miner.name, refused or f"unreachable at {miner.base_url}")
    return MinerFailure(miner.name, f"the connection failed ({type(exc).__name__})")


def _http_failure(miner: MinerConfig, status: int, content: bytes) -> MinerFailure:
    reason = f"HTTP {status}"
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        error = None
    if error:
        reason += f" ({_error_text(miner, error)})"
    if status in (401, 403):
        reason += f"; check its API key{f' ({miner.api_key_env})' if miner.api_key_env else ''}"
    return MinerFailure(miner.name, reason, rejected=status in (400, 413, 422))


def _error_text(miner: MinerConfig, error: Any) -> str:
    text = str(error.get("message") or error) if isinstance(error, dict) else str(error)
    # A server may echo the key it was sent ("Incorrect API key provided: sk-...").
    for secret in (miner.resolved_api_key(), miner.basic_auth):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "***")
    if miner.basic_auth is not None:  # the password alone, too
        password = miner.basic_auth.get_secret_value().partition(":")[2]
        if password:
            text = text.replace(password, "***")
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."


def _retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number or an HTTP date); None if it
    says nothing usable."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def clock(seconds: float) -> str:
    """The time ``seconds`` from now, as a person reads it: ``05:42:10 UTC (in 30s)``."""
    when = datetime.fromtimestamp(time.time() + seconds, UTC)
    return f"{when:%H:%M:%S} UTC (in {max(1, round(seconds))}s)"
