"""apex.v1 over gRPC, gRPC-Web and Connect's binary codec, served by connect-python.

``with_binary_protocols(wire_app)`` puts connect-python's ASGI app (generated from apex.proto,
apex_mcp/apex/gen) in front of the hand-written Connect JSON server: requests whose
Content-Type is ``application/grpc*``, ``application/proto`` or ``application/connect+proto``
go to it; everything else (Connect JSON, /healthz, errors for unknown paths) stays with the
wire app. Both serve the same ApexClient per caller (the wire app's resolver), with the same
size limit, deadlines, error codes and Idempotency-Key replies.

Imported only on the gateway path: protobuf and connect-python cost start-up time that stdio
users never need (they come with the ``apex-mcp[gateway]`` extra).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any, TypeVar

import anyio
from connectrpc.code import Code as ConnectCode
from connectrpc.compression import Compression
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage
from pydantic import ValidationError

from . import connect
from .client import RPCS, Rpc
from .errors import ApexError, Code
from .gen.apex_connect import ApexServiceASGIApplication
from .models import Message
from .server import ApexWireApp, Receive, Scope, Send, _call_with_deadline, _deadline_error

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
                client = await self._wire.resolve(_bearer(headers.get("authorization")))
                timeout = _timeout(ctx)
                key = headers.get(connect.IDEMPOTENCY_KEY_HEADER)
                if key is not None and rpc.name in connect.KEYED_RPCS and self._wire.replies:
                    payload = await self._wire._once(rpc, client, model, timeout, key)
                    result = connect.decode_message(rpc.response, payload)
                else:
                    result = await _call_with_deadline(rpc, client, model, timeout)
                output: type[ProtoMessage] = ctx.method().output
                return to_proto(result, output)

        return call

    def _streaming(self, rpc: Rpc) -> Callable[[ProtoMessage, Ctx], AsyncIterator[Any]]:
        async def call(request: ProtoMessage, ctx: Ctx) -> AsyncIterator[ProtoMessage]:
            output: type[ProtoMessage] = ctx.method().output
            with _as_connect_errors(rpc):
                model = from_proto(request, rpc.request)
                client = await self._wire.resolve(
                    _bearer(ctx.request_headers().get("authorization"))
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
                            raise _deadline_error(rpc) from None
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
            raise ConnectError(ConnectCode(exc.code.value), exc.message) from None
        if not isinstance(exc, Exception):
            return
        log.error("wire server: %s failed", self._rpc.name, exc_info=exc)
        raise ConnectError(ConnectCode.INTERNAL, f"{self._rpc.name} failed on the server") from None


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


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
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(bytes(data), self._max_bytes + 1)
        except zlib.error:
            raise ConnectError(ConnectCode.INVALID_ARGUMENT, "the body is not valid gzip") from None
        if len(out) > self._max_bytes or inflater.unconsumed_tail:
            raise ConnectError(
                ConnectCode.RESOURCE_EXHAUSTED,
                f"the message inflates past the {self._max_bytes}-byte limit",
            )
        return out


# --- the app ----------------------------------------------------------------------------------


def is_binary_protocol(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-type":
            kind = value.decode("latin-1").split(";")[0].strip().lower()
            return bool(kind.startswith(BINARY_CONTENT_TYPES))
    return False


def with_binary_protocols(wire: ApexWireApp) -> Callable[[Scope, Receive, Send], Any]:
    """An ASGI app serving ``wire``'s callers over gRPC, gRPC-Web and Connect binary too."""
    limit = wire.max_request_bytes
    proto_app = ApexServiceASGIApplication(
        _Service(wire),  # type: ignore[arg-type]  # its methods are set per RPC in __init__
        read_max_bytes=limit,
        compressions=[_BoundedGzip(limit)],
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_binary_protocol(scope):
            await wire(scope, receive, send)
            return
        await proto_app(scope, _bounded(receive, limit), _keeps_replies(send, wire))

    return app


def _bounded(receive: Receive, limit: int) -> Receive:
    """The request body, refused once it passes the limit (plus gRPC's 5-byte frame prefix)
    rather than read whole into memory first."""
    size = 0

    async def bounded() -> MutableMapping[str, Any]:
        nonlocal size
        event = await receive()
        size += len(event.get("body", b""))
        if size > limit + 5:
            raise ConnectError(
                ConnectCode.RESOURCE_EXHAUSTED, f"the request is over the {limit}-byte limit"
            )
        return event

    return bounded


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
