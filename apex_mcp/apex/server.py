"""The Apex wire server: an ASGI app that serves any ApexClient over the Connect protocol.

``create_app(resolve)`` answers ``POST /apex.v1.ApexService/<Method>``: unary calls as JSON and
``ChatCompletionStream`` as a stream of ``application/connect+json`` envelopes. Who may call is
decided by ``resolve``: it gets the bearer token (or None) and returns the ApexClient to serve
for that caller, or raises ``ApexError(unauthenticated)``. So one app can serve one shared
client, or one engine view per user.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple, Protocol

import anyio

from .._http import Receive as Receive  # the ASGI types, for the wire apps built on this one
from .._http import Scope as Scope
from .._http import Send as Send
from .._http import bearer_token, drain_body, send_whole
from . import connect
from .client import RPCS, SERVICE, ApexClient, Rpc
from .errors import ApexError, Code
from .models import Message

log = logging.getLogger(__name__)

Resolver = Callable[[str | None], Awaitable[ApexClient]]

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
_PREFIX = f"/{SERVICE}/"


# A first try still unanswered after this long was cut short (its server stopped): a retry
# cannot know whether the write was done.
ABANDONED_AFTER = 120.0
_RECHECK_SECONDS = 0.05  # how often a retry looks for the first try's reply


class Reply(NamedTuple):
    """What is kept for an idempotency key: the first try's request and its reply."""

    method: str
    request_digest: str  # of the request: a key reused for another request is refused
    payload: bytes | None  # None while the first try is being answered
    age: float  # seconds since the first try came


class Replies(Protocol):
    """Where the replies to keyed writes are kept, per caller (the user ``client`` serves)."""

    async def claim(
        self, client: ApexClient, key: str, method: str, request_digest: str
    ) -> Reply | None:
        """What is kept for ``key``; None if nothing was: then the key is claimed for this
        request, and the caller ``remember``s its reply (or ``forget``s the key)."""
        ...

    async def remember(self, client: ApexClient, key: str, payload: bytes) -> None: ...

    async def forget(self, client: ApexClient, key: str) -> None: ...


def serve_client(client: ApexClient, tokens: set[str] | None = None) -> Resolver:
    """A resolver serving one client: to anyone, or to holders of one of ``tokens``."""

    async def resolve(token: str | None) -> ApexClient:
        if tokens is not None and token not in tokens:
            raise ApexError(Code.UNAUTHENTICATED, "missing or unknown API key")
        return client

    return resolve


class ApexWireApp:
    """The ASGI application. Build it with :func:`create_app`."""

    def __init__(
        self,
        resolve: Resolver,
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        replies: Replies | None = None,
    ) -> None:
        self.resolve = resolve
        self.max_request_bytes = max_request_bytes
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.replies = replies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            event = await receive()
            hook = {"lifespan.startup": self.on_startup, "lifespan.shutdown": self.on_shutdown}
            if event["type"] not in hook:
                continue
            try:
                if (run := hook[event["type"]]) is not None:
                    await run()
            except Exception as exc:
                log.exception("wire server %s failed", event["type"])
                await send({"type": event["type"] + ".failed", "message": str(exc)})
                return
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = _Body(receive, self.max_request_bytes)

        async def send_after_body(message: MutableMapping[str, Any]) -> None:
            # Answering before the whole request arrived makes HTTP/2 servers (hypercorn)
            # drop the connection when the rest of it comes: read what is left first.
            if message["type"] == "http.response.start":
                await body.drain()
                if self.replies is not None:  # tell clients that keyed writes are kept
                    message = {
                        **message,
                        "headers": [
                            *message.get("headers", []),
                            (connect.KEEPS_REPLIES_HEADER.encode(), b"24h"),
                        ],
                    }
            await send(message)

        await self._route(scope, body, send_after_body)

    async def _route(self, scope: Scope, receive: _Body, send: Send) -> None:
        path: str = scope["path"]
        if path in ("/healthz", "/health"):
            await send_whole(send, 200, b'{"status":"ok"}', "application/json")
            return
        rpc = RPCS.get(path[len(_PREFIX) :]) if path.startswith(_PREFIX) else None
        if rpc is None:
            await _send_error(
                send, ApexError(Code.UNIMPLEMENTED, f"no such method: {path[:200]}"), status=404
            )
            return
        if scope["method"] != "POST":
            await _send_error(
                send,
                ApexError(Code.UNIMPLEMENTED, f"{rpc.name} takes POST"),
                status=405,
                extra=[(b"allow", b"POST")],
            )
            return
        headers = _headers(scope)
        expected = connect.STREAM_CONTENT_TYPE if rpc.streaming else connect.UNARY_CONTENT_TYPE
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != expected:
            await _send_error(
                send,
                ApexError(
                    Code.UNIMPLEMENTED,
                    f"{rpc.name} takes Content-Type {expected}, not {content_type or 'none'!r}",
                ),
                status=415,
            )
            return
        if rpc.streaming:
            await self._serve_stream(rpc, headers, receive, send)
        else:
            await self._serve_unary(rpc, headers, receive, send)

    # --- unary ------------------------------------------------------------------------------

    async def _serve_unary(
        self, rpc: Rpc, headers: dict[str, str], receive: _Body, send: Send
    ) -> None:
        try:
            timeout = connect.parse_timeout(headers.get("connect-timeout-ms"))
            body = await receive.read()
            body = self._inflate(body, headers.get("content-encoding"))
            request = connect.decode_message(rpc.request, body)
            client = await self.resolve(bearer_token(headers.get("authorization")))
            key = headers.get(connect.IDEMPOTENCY_KEY_HEADER)
            if key is not None and rpc.name in connect.KEYED_RPCS and self.replies is not None:
                payload = await self.once(rpc, client, request, timeout, key)
            else:
                payload = connect.encode_message(
                    await call_with_deadline(rpc, client, request, timeout)
                )
        except ApexError as error:
            await _send_error(send, error)
            return
        except Exception:
            log.exception("wire server: %s failed", rpc.name)
            await _send_error(send, ApexError(Code.INTERNAL, f"{rpc.name} failed on the server"))
            return
        if len(payload) >= connect.COMPRESS_MIN_BYTES and "gzip" in headers.get(
            "accept-encoding", ""
        ):
            await send_whole(
                send,
                200,
                connect.gzip_compress(payload),
                connect.UNARY_CONTENT_TYPE,
                [(b"content-encoding", b"gzip")],
            )
        else:
            await send_whole(send, 200, payload, connect.UNARY_CONTENT_TYPE)

    async def once(
        self,
        rpc: Rpc,
        client: ApexClient,
        request: Message,
        timeout: float | None,
        key: str,
    ) -> bytes:
        """The reply to a keyed write: the one kept for its key, else the call's, kept."""
        replies = self.replies
        assert replies is not None
        if not 0 < len(key) <= connect.MAX_IDEMPOTENCY_KEY_CHARS or not (
            key.isascii() and key.isprintable()
        ):
            raise ApexError(
                Code.INVALID_ARGUMENT,
                f"the Idempotency-Key header must be 1 to {connect.MAX_IDEMPOTENCY_KEY_CHARS} "
                "printable ASCII characters",
            )
        digest = hashlib.sha256(connect.encode_message(request)).hexdigest()
        if (kept := await self._kept(rpc, client, key, digest, timeout)) is not None:
            return kept
        # Shielded: a client gone mid-call still gets the reply kept for its retry.
        with anyio.CancelScope(shield=True):
            try:
                payload = connect.encode_message(
                    await call_with_deadline(rpc, client, request, timeout)
                )
            except BaseException:
                with contextlib.suppress(ApexError):
                    await replies.forget(client, key)  # nothing done: a retry tries again
                raise
            try:
                await replies.remember(client, key, payload)
            except ApexError as error:  # the write is done: answer it all the same
                log.warning("cannot keep the reply to %s for retries: %s", rpc.name, error)
        return payload

    async def _kept(
        self, rpc: Rpc, client: ApexClient, key: str, digest: str, timeout: float | None
    ) -> bytes | None:
        """The reply kept for ``key`` (waiting for a first try being answered); None when
        there was none: the key is now this call's."""
        replies = self.replies
        assert replies is not None
        try:
            with anyio.fail_after(math.inf if timeout is None else timeout):
                return await self._wait_for_kept(replies, rpc, client, key, digest)
        except TimeoutError:
            raise rpc.deadline_exceeded() from None

    async def _wait_for_kept(
        self, replies: Replies, rpc: Rpc, client: ApexClient, key: str, digest: str
    ) -> bytes | None:
        while (kept := await replies.claim(client, key, rpc.name, digest)) is not None:
            if (kept.method, kept.request_digest) != (rpc.name, digest):
                raise ApexError(
                    Code.INVALID_ARGUMENT,
                    "this Idempotency-Key was sent with another request in the last 24 h: "
                    "send a new key with each new request",
                )
            if kept.payload is not None:
                return kept.payload
            if kept.age > ABANDONED_AFTER:
                raise ApexError(
                    Code.ABORTED,
                    f"the first try of this {rpc.name} was cut short before its reply "
                    "(its server stopped): check whether it was done before sending it "
                    "again with a new Idempotency-Key",
                )
            await anyio.sleep(_RECHECK_SECONDS)  # the first try is being answered
        return None

    # --- streaming --------------------------------------------------------------------------

    async def _serve_stream(
        self, rpc: Rpc, headers: dict[str, str], receive: _Body, send: Send
    ) -> None:
        compress = "gzip" in headers.get("connect-accept-encoding", "")
        started = False

        async def start() -> None:
            nonlocal started
            if not started:
                started = True
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", connect.STREAM_CONTENT_TYPE.encode()),
                            *([(b"connect-content-encoding", b"gzip")] if compress else []),
                        ],
                    }
                )

        error: ApexError | None = None
        try:
            timeout = connect.parse_timeout(headers.get("connect-timeout-ms"))
            body = await receive.read()
            request = self._unwrap_envelope(body, headers.get("connect-content-encoding"))
            client = await self.resolve(bearer_token(headers.get("authorization")))
            with anyio.fail_after(math.inf if timeout is None else timeout):
                stream: AsyncIterator[Message] = getattr(client, rpc.attr)(request, timeout=timeout)
                try:
                    async for chunk in stream:
                        data = connect.encode_message(chunk)
                        await start()
                        await send(
                            {
                                "type": "http.response.body",
                                "body": connect.pack_envelope(
                                    data,
                                    compress=compress and len(data) >= connect.COMPRESS_MIN_BYTES,
                                ),
                                "more_body": True,
                            }
                        )
                finally:
                    aclose = getattr(stream, "aclose", None)
                    if aclose is not None:
                        await aclose()
        except ApexError as exc:
            error = exc
        except TimeoutError:
            error = rpc.deadline_exceeded()
        except OSError:
            return  # the client went away; nobody to tell
        except Exception:
            log.exception("wire server: %s failed", rpc.name)
            error = ApexError(Code.INTERNAL, f"{rpc.name} failed on the server")
        with contextlib.suppress(OSError):  # the client may have gone away
            await start()
            await send(
                {
                    "type": "http.response.body",
                    "body": connect.end_stream_envelope(error),
                    "more_body": False,
                }
            )

    def _unwrap_envelope(self, body: bytes, encoding: str | None) -> Message:
        reader = connect.EnvelopeReader(self.max_request_bytes)
        if encoding not in (None, "", "identity", "gzip"):
            raise ApexError(Code.UNIMPLEMENTED, f"unsupported stream encoding {encoding!r}")
        envelopes = reader.feed(body)
        if len(envelopes) != 1 or reader.pending:
            raise ApexError(
                Code.INVALID_ARGUMENT, "a streaming request must be exactly one envelope"
            )
        flags, payload = envelopes[0]
        if flags & ~connect.FLAG_COMPRESSED:
            raise ApexError(Code.INVALID_ARGUMENT, f"unexpected envelope flags {flags:#04x}")
        return connect.decode_message(RPCS["ChatCompletionStream"].request, payload)

    # --- shared -----------------------------------------------------------------------------

    def _inflate(self, body: bytes, encoding: str | None) -> bytes:
        if encoding in (None, "", "identity"):
            return body
        if encoding == "gzip":
            return connect.gunzip(body, self.max_request_bytes)
        raise ApexError(Code.UNIMPLEMENTED, f"unsupported Content-Encoding {encoding!r}")


class _Body:
    """The request body, read once with a size limit, and drained if left unread."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._done = False

    async def read(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while not self._done:
            event = await self._next()
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise ApexError(
                    Code.RESOURCE_EXHAUSTED, f"the request is over the {self._limit}-byte limit"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def drain(self) -> None:
        if not self._done:
            self._done = True
            await drain_body(self._receive)

    async def _next(self) -> MutableMapping[str, Any]:
        event = await self._receive()
        if event["type"] == "http.disconnect":
            self._done = True
            raise ApexError(Code.CANCELED, "the client went away")
        self._done = not event.get("more_body", False)
        return event


def create_app(
    resolve: Resolver,
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    replies: Replies | None = None,
) -> ApexWireApp:
    return ApexWireApp(
        resolve,
        max_request_bytes=max_request_bytes,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        replies=replies,
    )


async def call_with_deadline(
    rpc: Rpc, client: ApexClient, request: Message, timeout: float | None
) -> Message:
    method = getattr(client, rpc.attr)
    try:
        with anyio.fail_after(math.inf if timeout is None else timeout):
            result: Message = await method(request, timeout=timeout)
            return result
    except TimeoutError:
        raise rpc.deadline_exceeded() from None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _send_error(
    send: Send,
    error: ApexError,
    *,
    status: int | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = list(extra or [])
    if error.retry_after is not None:
        headers.append((b"retry-after", str(math.ceil(error.retry_after)).encode()))
    with contextlib.suppress(OSError):  # the client may have gone away
        await send_whole(
            send,
            status or error.code.http_status,
            connect.encode_json(connect.error_json(error)),
            "application/json",
            headers,
        )
