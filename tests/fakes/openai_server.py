"""A fake OpenAI-compatible chat server: real HTTP and real SSE, answers tests control.

    fake = FakeOpenAI(models=["m1"])
    with serve_openai(fake) as base_url:      # http://127.0.0.1:<port>/v1
        ...
        fake.requests                         # the chat request bodies it received

It answers ``POST .../chat/completions`` (JSON, or SSE when ``stream`` is true: a role chunk,
one chunk per word, a chunk with ``finish_reason``, a usage chunk when ``stream_options``
asks for it, then ``data: [DONE]``) and ``GET .../models``. The answer is, in this order of
precedence: ``reply(body)`` (a function, sync or async, of the request body), ``answer``, or
``echo: <last user message>`` (``{"echo": ...}`` when JSON was asked for).

Controls, plain attributes a test may change at any time:

- ``fail(status, times=None)``: answer chat with that HTTP status (the next ``times`` requests
  only, or all); the body is an OpenAI error object.
- ``stall_after``: stop answering after that many SSE events (0: before any answer, streamed or
  not) until the client goes away.
- ``break_after``: cut the connection after that many SSE events (0: right after the headers).
- ``delay``: seconds to wait before a non-streamed answer and before each SSE event.
- ``malformed``: answer 200 with something that is not an OpenAI answer.
- ``api_key``: when set, anything without ``Authorization: Bearer <api_key>`` gets a 401 whose
  message echoes the key it was given (as some servers do).
- ``usage``: whether answers carry usage.

``disconnects`` counts stalled requests whose client went away: how a test sees that a
cancelled call also cancelled its upstream request.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import answer_lifespan
from tests.servers import serve_asgi

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Reply = Callable[[dict[str, Any]], str | Awaitable[str]]

CREATED = 1_700_000_000  # a fixed timestamp keeps answers deterministic


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the decoded JSON body, or None


@dataclass
class FakeOpenAI:
    models: list[str] = field(default_factory=lambda: ["fake-model"])
    answer: str | None = None
    reply: Reply | None = None
    api_key: str | None = None
    stall_after: int | None = None
    break_after: int | None = None
    delay: float = 0.0
    malformed: bool = False
    usage: bool = True
    calls: list[Call] = field(default_factory=list)
    disconnects: int = 0  # stalled requests whose client went away (a cancelled upstream call)
    fail_status: int | None = None
    fail_times: int | None = None  # None: every request fails while fail_status is set

    def fail(self, status: int = 500, *, times: int | None = None) -> None:
        self.fail_status, self.fail_times = status, times

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The bodies of the chat completion requests, in order."""
        return [c.body for c in self.calls if c.path.endswith("/chat/completions")]

    @property
    def model_listings(self) -> int:
        return sum(1 for c in self.calls if c.path.endswith("/models"))

    # --- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        body = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            await _send_json(send, 400, _error("the body is not JSON"))
            return
        call = Call(scope["method"], scope["path"], headers, parsed)
        self.calls.append(call)

        if self.api_key is not None:
            given = headers.get("authorization", "").removeprefix("Bearer ")
            if given != self.api_key:
                await _send_json(send, 401, _error(f"Incorrect API key provided: {given}"))
                return
        if call.method == "GET" and call.path.endswith("/models"):
            data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
            await _send_json(send, 200, {"object": "list", "data": data})
        elif call.method == "POST" and call.path.endswith("/chat/completions"):
            await self._chat(call.body if isinstance(call.body, dict) else {}, receive, send)
        else:
            await _send_json(send, 404, _error(f"no route {call.method} {call.path}"))

    async def _chat(self, body: dict[str, Any], receive: Receive, send: Send) -> None:
        if self.fail_status is not None and self.fail_times != 0:
            if self.fail_times is not None:
                self.fail_times -= 1
            await _send_json(send, self.fail_status, _error(f"fake failure {self.fail_status}"))
            return
        if self.stall_after == 0:
            await _until_disconnect(receive)
            self.disconnects += 1
            return
        text = await self._answer_text(body)
        model = body.get("model") or (self.models[0] if self.models else "fake-model")
        if body.get("stream"):
            await self._stream(body, model, text, receive, send)
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.malformed:
            await _send_json(send, 200, {"unexpected": "shape"})
            return
        answer: dict[str, Any] = {
            "id": f"chatcmpl-fake-{len(self.calls)}",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
        }
        if self.usage:
            answer["usage"] = _usage(body, text)
        await _send_json(send, 200, answer)

    async def _stream(
        self, body: dict[str, Any], model: str, text: str, receive: Receive, send: Send
    ) -> None:
        base = {
            "id": f"chatcmpl-fake-{len(self.calls)}",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return json.dumps(base | {"choices": [choice]})

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in re.findall(r"\s*\S+", text)]
        events.append(chunk({}, "stop"))
        if self.usage and (body.get("stream_options") or {}).get("include_usage"):
            events.append(json.dumps(base | {"choices": [], "usage": _usage(body, text)}))
        if self.malformed:
            events.insert(1, "{not json")
        events.append("[DONE]")

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        for i, event in enumerate(events):
            if self.break_after is not None and i >= self.break_after:
                return  # ending without the last body message makes hypercorn drop the connection
            if self.stall_after is not None and i >= self.stall_after:
                await _until_disconnect(receive)
                self.disconnects += 1
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {event}\n\n".encode(),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _answer_text(self, body: dict[str, Any]) -> str:
        if self.reply is not None:
            result = self.reply(body)
            return await result if inspect.isawaitable(result) else result
        if self.answer is not None:
            return self.answer
        users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
        last = users[-1] if users else ""
        if (body.get("response_format") or {}).get("type") == "json_object":
            return json.dumps({"echo": last})
        return f"echo: {last}"


@contextmanager
def serve_openai(fake: FakeOpenAI) -> Iterator[str]:
    """Serve ``fake`` on 127.0.0.1; yields its OpenAI base URL (ending in ``/v1``)."""
    with serve_asgi(fake) as url:
        yield f"{url}/v1"


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "fake_error", "code": None}}


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    completion = len(text.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_json(send: Send, status: int, data: Any) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
