"""A hostile OpenAI-compatible miner: real HTTP on 127.0.0.1, answers made to hurt the server.

    hostile = HostileMiner("huge_line", size=200 * MIB)
    with serve_hostile(hostile) as base_url:    # http://127.0.0.1:<port>/v1
        ...

Its ``mode`` (a plain attribute a test may change at any time) says how it answers a chat:

- ``huge_line``: an SSE ``data:`` line of ``size`` bytes that never ends.
- ``huge_answer``: a well-formed stream of chunks of text, ``size`` bytes of text in all.
- ``huge_body``: a non-streamed answer whose message is ``size`` bytes long (streamed
  requests get ``huge_answer``).
- ``keepalive``: a stream of SSE comments and empty lines only, until the client goes away.
- ``rate_limited``: HTTP 429 with ``Retry-After: <retry_after>`` for the next ``times``
  requests (all while ``times`` is None), then the ``ok`` answer.
- ``ok``: a short good answer, ``hostile ok``.

What it sends is generated as it goes, in pieces of 64 KiB, and stops when the client goes
away: the fake itself holds little memory, so that a test measuring memory measures the
server's. ``sent`` is the number of bytes of body it sent for its last answer, ``calls`` the
chat requests it received.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.fakes import answer_lifespan
from tests.servers import serve_asgi

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MIB = 1024 * 1024
PIECE = 64 * 1024
TEXT = b"x" * PIECE


@dataclass
class HostileMiner:
    mode: str = "ok"
    size: int = 200 * MIB
    retry_after: str = "30"
    times: int | None = None
    calls: int = 0
    sent: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        body = await _read_body(receive)
        if scope["method"] == "GET" and scope["path"].endswith("/models"):
            data = {"object": "list", "data": [{"id": "hostile", "object": "model"}]}
            await _send_json(send, 200, data)
            return
        self.calls += 1
        self.sent = 0
        request = json.loads(body) if body else {}
        stream = bool(request.get("stream"))
        gone = asyncio.Event()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, gone))
        try:
            await self._chat(stream, send, gone)
        finally:
            watcher.cancel()

    async def _chat(self, stream: bool, send: Send, gone: asyncio.Event) -> None:
        mode = self.mode
        if mode == "rate_limited":
            if self.times is None or self.times > 0:
                if self.times is not None:
                    self.times -= 1
                error = {"error": {"message": "slow down", "type": "rate_limit"}}
                await _send_json(send, 429, error, [(b"retry-after", self.retry_after.encode())])
                return
            mode = "ok"
        if mode == "ok":
            await self._ok(stream, send)
        elif mode == "huge_line":
            await _start(send, "text/event-stream")
            head = b'data: {"choices":[{"index":0,"delta":{"content":"'
            await self._body(send, gone, head, TEXT, b"")
        elif mode == "huge_answer" or (mode == "huge_body" and stream):
            await _start(send, "text/event-stream")
            role = _event({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
            piece = _event({"choices": [{"index": 0, "delta": {"content": TEXT.decode()}}]})
            await self._body(send, gone, role, piece, b"data: [DONE]\n\n")
        elif mode == "huge_body":
            await _start(send, "application/json")
            head = b'{"id":"h","choices":[{"index":0,"message":{"role":"assistant","content":"'
            tail = b'"},"finish_reason":"stop"}]}'
            await self._body(send, gone, head, TEXT, tail)
        elif mode == "keepalive":
            await _start(send, "text/event-stream")
            while not gone.is_set():
                await _send_piece(send, b": keep-alive\n\n\n")
                await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"unknown mode {mode!r}")

    async def _ok(self, stream: bool, send: Send) -> None:
        if not stream:
            message = {"role": "assistant", "content": "hostile ok"}
            answer = {"id": "h", "choices": [{"index": 0, "message": message}]}
            await _send_json(send, 200, answer)
            return
        await _start(send, "text/event-stream")
        delta = {"role": "assistant", "content": "hostile ok"}
        await _send_piece(send, _event({"choices": [{"index": 0, "delta": delta}]}))
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await _send_piece(send, _event(done) + b"data: [DONE]\n\n")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _body(
        self, send: Send, gone: asyncio.Event, head: bytes, piece: bytes, tail: bytes
    ) -> None:
        """``head``, ``piece`` until ``size`` bytes were sent (or the client left), ``tail``."""
        await _send_piece(send, head)
        while self.sent < self.size and not gone.is_set():
            await _send_piece(send, piece)
            self.sent += len(piece)
            await asyncio.sleep(0)  # a send to a client that left may not wait: hear that it did
        if not gone.is_set():
            await send({"type": "http.response.body", "body": tail, "more_body": False})


@contextmanager
def serve_hostile(miner: HostileMiner) -> Iterator[str]:
    """Serve ``miner`` on 127.0.0.1; yields its OpenAI base URL (ending in ``/v1``)."""
    with serve_asgi(miner) as url:
        yield f"{url}/v1"


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


async def _start(send: Send, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _send_piece(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_json(
    send: Send, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": [*headers, *(extra or [])]}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
