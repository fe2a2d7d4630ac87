"""apex.v1 over gRPC, gRPC-Web and Connect's binary codec, served by connect-python.

``with_binary_protocols(wire_app)`` puts connect-python's ASGI app (generated from apex.proto,
apex_mcp/apex/gen) in front of the hand-written Connect JSON server: requests whose
Content-Type is ``application/grpc*``, ``application/proto`` or
``application/connect+proto``, and Connect GETs of reads, go to it; everything else (Connect
JSON, /healthz, errors for unknown paths) stays with the wire app. Both serve the same
ApexClient per caller (the wire app's resolver), with the same size limit, deadlines, error
codes and Idempotency-Key replies.

Imported only on the gateway path: protobuf and connect-python cost start-up time that stdio
users never need (they come with the ``apex-mcp[gateway]`` extra).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
from connectrpc.code import Code as ConnectCode
from connectrpc.compression import Compression
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from pydantic import ValidationError

from .._http import Receive, Scope, Send, bearer_token, header, send_whole
from . import connect
from .client import RPCS, SERVICE, Rpc
from .errors import ApexError, Code
from .gen.apex_connect import ApexServiceASGIApplication
from .models import Message
from .server import ApexWireApp, call_with_deadline

log = logging.getLogger(__name__)

P = TypeVar("P", bound=ProtoMessage)
M = TypeVar("M", bound=Message)

BINARY_CONTENT_TYPES = ("application/grpc", "application/proto", "application/connect+proto")


# --- the one conversion between protobuf messages and the pydantic models -------------------
# Both follow protobuf's JSON mapping: the models' wire form is what json_format reads/writes.


def to_proto(model: Message, cls: type[P]) -> P:
    return json_format.ParseDict(model.to_wire(), cls(), ignore_unknown_fields=True)


def from_proto(message: ProtoMessage, cls: type[M]) -> M:
    try:
        return cls.from_wire(json_format.MessageToDict(message))
    except ValidationError as exc:
        raise ApexError(
            Code.INVALID_ARGUMENT,
            f"invalid {cls.__name__}: {connect.describe_validation_error(exc)}",
        ) from None


# --- the service ------------------------------------------------------------------------------

Ctx = RequestContext[Any, Any]


class _Service:
    """Every apex.v1 method, each delegating to the caller's ApexClient."""

    def __init__(self, wire: ApexWireApp) -> None:
        self._wire = wire
        for rpc in RPCS.values():
            setattr(self, rpc.attr, self._streaming(rpc) if rpc.streaming else self._unary(rpc))

    def _unary(self, rpc: Rpc) -> Callable[[ProtoMessage, Ctx], Any]:
        async def call(request: ProtoMessage, ctx: Ctx) -> ProtoMessage:
            with _as_connect_errors(rpc):
                model = from_proto(request, rpc.request)
                headers = ctx.request_headers()
                client = await self._wire.resolve(bearer_token(headers.get("authorization")))
                timeout = _timeout(ctx)
                key = headers.get(connect.IDEMPOTENCY_KEY_HEADER)
                if key is not None and rpc.name in connect.KEYED_RPCS and self._wire.replies:
                    payload = await self._wire.once(rpc, client, model, timeout, key)
                    result = connect.decode_message(rpc.response, payload)
                else:
                    result = await call_with_deadline(rpc, client, model, timeout)
                output: type[ProtoMessage] = ctx.method().output
                return to_proto(result, output)

        return call

    def _streaming(self, rpc: Rpc) -> Callable[[ProtoMessage, Ctx], AsyncIterator[Any]]:
        async def call(request: ProtoMessage, ctx: Ctx) -> AsyncIterator[ProtoMessage]:
            output: type[ProtoMessage] = ctx.method().output
            with _as_connect_errors(rpc):
                model = from_proto(request, rpc.request)
                client = await self._wire.resolve(
                    bearer_token(ctx.request_headers().get("authorization"))
                )
                timeout = _timeout(ctx)
                deadline = math.inf if timeout is None else anyio.current_time() + timeout
                stream: AsyncIterator[Message] = getattr(client, rpc.attr)(model, timeout=timeout)
            try:
                while True:
                    # The deadline guards each step, never across a yield (a cancel scope
                    # must not span one in an async generator).
                    with _as_connect_errors(rpc):
                        try:
                            with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                                chunk = await anext(stream)
                        except StopAsyncIteration:
                            return
                        except TimeoutError:
                            raise rpc.deadline_exceeded() from None
                    yield to_proto(chunk, output)
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()

        return call


class _as_connect_errors:
    """Turns what a call raises into the ConnectError connect-python sends: ApexError keeps
    its code and message; anything else is logged and sent as ``internal``."""

    def __init__(self, rpc: Rpc) -> None:
        self._rpc = rpc

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if exc is None or isinstance(exc, ConnectError | anyio.get_cancelled_exc_class()):
            return
        if isinstance(exc, ApexError):
            # Advice its raiser gave travels in the message, as in Connect JSON's errors.
            message = exc.explain() if exc.own_hint else exc.message
            raise ConnectError(ConnectCode(exc.code.value), message) from None
        if not isinstance(exc, Exception):
            return
        log.error("wire server: %s failed", self._rpc.name, exc_info=exc)
        raise ConnectError(ConnectCode.INTERNAL, f"{self._rpc.name} failed on the server") from None


def _timeout(ctx: Ctx) -> float | None:
    remaining = ctx.timeout_ms()
    return None if remaining is None else max(0.0, remaining / 1000)


class _BoundedGzip(Compression):
    """gzip that stops inflating past the size limit: a small bomb is not a big allocation."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes

    def name(self) -> str:
        return "gzip"

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return connect.gzip_compress(bytes(data))

    def decompress(self, data: bytes | bytearray | memoryview) -> bytes:
        try:
            return connect.gunzip(bytes(data), self._max_bytes)  # the JSON server's bomb guard
        except ApexError as error:
            raise ConnectError(ConnectCode(error.code.value), error.message) from None


# --- the app ----------------------------------------------------------------------------------


def is_binary_protocol(scope: Scope) -> bool:
    return _content_type(scope).startswith(BINARY_CONTENT_TYPES)


def _is_connect_get(scope: Scope) -> bool:
    """A Connect GET of a read (the proto marks reads NO_SIDE_EFFECTS): ``?encoding=...``."""
    return bool(
        scope["method"] == "GET"
        and scope["path"].startswith(f"/{SERVICE}/")
        and b"encoding=" in scope.get("query_string", b"")
    )


def _content_type(scope: Scope) -> str:
    return header(scope, b"content-type").split(";")[0].strip().lower()


def _te_trailers(scope: Scope) -> bool:
    return "trailers" in header(scope, b"te").lower()


async def _grpc_refusal(send: Send, content_type: str, message: str) -> None:
    status = [(b"grpc-status", b"3"), (b"grpc-message", quote(message).encode())]
    await send_whole(send, 200, b"", content_type, status)  # 3: invalid_argument


def with_binary_protocols(wire: ApexWireApp) -> Callable[[Scope, Receive, Send], Any]:
    """An ASGI app serving ``wire``'s callers over gRPC, gRPC-Web and Connect binary too."""
    limit = wire.max_request_bytes
    proto_app = ApexServiceASGIApplication(
        _Service(wire),  # type: ignore[arg-type]  # its methods are set per RPC in __init__
        read_max_bytes=limit,
        compressions=[_BoundedGzip(limit)],
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (is_binary_protocol(scope) or _is_connect_get(scope)):
            await wire(scope, receive, send)
            return
        content_type = _content_type(scope)
        if content_type.startswith("application/grpc") and not _te_trailers(scope):
            # Without it hypercorn (rightly) sends no trailers, so no status: refuse up front,
            # with the status in the headers (a trailers-only answer).
            await _grpc_refusal(send, content_type, "gRPC requests need the te: trailers header")
            return
        enveloped = content_type != "application/proto"
        await proto_app(
            scope, _bounded(receive, limit, enveloped=enveloped), _keeps_replies(send, wire)
        )

    return app


def _bounded(receive: Receive, limit: int, *, enveloped: bool) -> Receive:
    """The request body, refused once it passes the limit rather than read whole first. In
    enveloped protocols (gRPC, gRPC-Web, Connect streams), a frame declaring more than the
    limit is refused at its prefix, and a body ending inside a frame is called truncated
    (connect-python would drop the partial frame and see no message at all)."""
    size = 0
    frames = _Frames(limit) if enveloped else None

    async def bounded() -> MutableMapping[str, Any]:
        nonlocal size
        event = await receive()
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > limit + 5:
            raise ConnectError(
                ConnectCode.RESOURCE_EXHAUSTED, f"the request is over the {limit}-byte limit"
            )
        if frames is not None and event["type"] == "http.request":
            frames.feed(chunk, last=not event.get("more_body", False))
        return event

    return bounded


class _Frames:
    """Follows the 5-byte prefixes of a stream of frames (1 flag byte, 4 length bytes)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._prefix = bytearray()
        self._left = 0  # bytes of the current frame's message still to come

    def feed(self, data: bytes, *, last: bool) -> None:
        view = memoryview(data)
        while view:
            if self._left:
                step = min(self._left, len(view))
                self._left -= step
                view = view[step:]
                continue
            take = 5 - len(self._prefix)
            self._prefix += view[:take]
            view = view[take:]
            if len(self._prefix) == 5:
                self._left = int.from_bytes(self._prefix[1:5], "big")
                self._prefix.clear()
                if self._left > self._limit:
                    raise ConnectError(
                        ConnectCode.RESOURCE_EXHAUSTED,
                        f"a message of {self._left} bytes is over the {self._limit}-byte limit",
                    )
        if last and (self._left or self._prefix):
            raise ConnectError(
                ConnectCode.INVALID_ARGUMENT,
                "the request ends inside a message frame: it was cut short",
            )


def _keeps_replies(send: Send, wire: ApexWireApp) -> Send:
    if wire.replies is None:
        return send

    async def tell(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":  # as the JSON server says it
            message = {
                **message,
                "headers": [
                    *message.get("headers", []),
                    (connect.KEEPS_REPLIES_HEADER.encode(), b"24h"),
                ],
            }
        await send(message)

    return tell
