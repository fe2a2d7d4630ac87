"""The gateway's own cost per protocol: unary RPCs per second and streamed chunks per second
over Connect JSON, Connect binary, gRPC and gRPC-Web, beside a bare ASGI app (the floor).

    python -m bench.gateway_protocols [--seconds 2] [--rounds 5] [--chunks 50] [--concurrency 1]

Two server processes, each hypercorn on 127.0.0.1 (HTTP/2 h2c, prior knowledge):

- the gateway's ASGI app as ``create_gateway_app`` builds it (the Connect JSON server wrapped
  by ``with_binary_protocols``), its per-user client a stub that answers at once: a fixed
  ChatCompletionResponse for ChatCompletion, ``--chunks`` fixed chunks for
  ChatCompletionStream. No engine, no SQLite, no miners: what is left is the protocol cost.
- a bare ASGI app answering the same bytes with no parsing at all: the unary answer's JSON,
  and for the stream the chunks' JSON in Connect envelopes.

The client is connect-python's own (``ApexServiceClient``, generated from apex.proto) for the
gateway and its HTTP client, pyqwest, posting the request's JSON for the bare app: the same
HTTP/2 stack on both sides. pyqwest degrades under many concurrent tasks (about 200 req/s at
16), so calls run ``--concurrency`` at a time (default 1: the numbers are per-call latency as
throughput). The client runs in this process and shares the 2 cores with the servers.

The machine is shared and noisy, so each round measures the bare app and every protocol one
after the other (the order reversed every other round) and each protocol's rate is divided by
the bare app's rate of the same round; the report gives medians over rounds and the ratios'
median and min-max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import AsyncExitStack, contextmanager
from typing import Any, cast

from apex_mcp.apex import models as m

REQUEST = m.ChatCompletionRequest(messages=[m.ChatMessage(role="user", content="hello there")])
ANSWER = m.ChatCompletionResponse(
    id="chatcmpl-bench",
    choices=[
        m.Choice(
            index=0,
            finish_reason="stop",
            message=m.ChatCompletionMessage(role="assistant", content="echo: hello there"),
        )
    ],
    created=1_764_800_000,
    model="m1",
    object="chat.completion",
    system_fingerprint="miner:first",
)
CHUNK = m.ChatCompletionChunkResponse(
    id="chatcmpl-bench",
    choices=[m.ChunkChoice(index=0, delta=m.ChoiceDelta(content="word "))],
    created=1_764_800_000,
    model="m1",
    object="chat.completion.chunk",
)
SERVICE = "/apex.v1.ApexService"
PROTOCOLS = ["connect-json", "connect-proto", "grpc", "grpc-web"]


# --- the servers (each run in a process of its own: --serve) ----------------------------------


class InstantApex:
    """The two chat RPCs of ApexClient, answered at once."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks

    async def chat_completion(
        self, request: m.ChatCompletionRequest, *, timeout: float | None = None
    ) -> m.ChatCompletionResponse:
        return ANSWER

    async def chat_completion_stream(
        self, request: m.ChatCompletionRequest, *, timeout: float | None = None
    ) -> AsyncIterator[m.ChatCompletionChunkResponse]:
        for _ in range(self.chunks):
            yield CHUNK


def gateway_app(chunks: int) -> Callable[..., Any]:
    from apex_mcp.apex.client import ApexClient
    from apex_mcp.apex.grpc_server import with_binary_protocols
    from apex_mcp.apex.server import create_app, serve_client

    return with_binary_protocols(create_app(serve_client(cast(ApexClient, InstantApex(chunks)))))


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def bare_app(chunks: int) -> Callable[..., Any]:
    """The floor: the gateway's answers as ready bytes, the request body read and ignored."""
    unary = json.dumps(ANSWER.to_wire(), separators=(",", ":")).encode()
    chunk = envelope(json.dumps(CHUNK.to_wire(), separators=(",", ":")).encode())
    end = envelope(b"{}", flags=2)

    Message = MutableMapping[str, Any]

    async def app(
        scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        streaming = scope["path"].endswith("Stream")
        content_type = b"application/connect+json" if streaming else b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type)],
            }
        )
        if streaming:
            for _ in range(chunks):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": end})
        else:
            await send({"type": "http.response.body", "body": unary})

    return app


def serve(kind: str, port: int, chunks: int) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    # hypercorn ends a connection after 1,000 requests by default; pyqwest was seen to stall
    # on the stream in flight when it did, so one connection serves a whole measurement.
    config.keep_alive_max_requests = 10**9
    app = gateway_app(chunks) if kind == "gateway" else bare_app(chunks)
    asyncio.run(hypercorn_serve(app, config))


@contextmanager
def server_process(kind: str, chunks: int) -> Iterator[str]:
    from tests.servers import free_port, wait_listening

    port = free_port()
    command = [sys.executable, "-m", "bench.gateway_protocols", "--serve", kind]
    command += ["--port", str(port), "--chunks", str(chunks)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the clients ------------------------------------------------------------------------------

Unary = Callable[[], Awaitable[None]]
Stream = Callable[[], Awaitable[int]]  # the chunks it received


def h2_client() -> Any:
    import pyqwest

    return pyqwest.Client(pyqwest.HTTPTransport(http_version=pyqwest.HTTPVersion.HTTP2))


async def gateway_calls(url: str, protocol: str, stack: AsyncExitStack) -> tuple[Unary, Stream]:
    from connectrpc.protocol import ProtocolType

    from apex_mcp.apex.gen import apex_pb2 as pb
    from apex_mcp.apex.gen.apex_connect import ApexServiceClient

    kind = {"connect": ProtocolType.CONNECT, "grpc": ProtocolType.GRPC}
    kind["grpc-web"] = ProtocolType.GRPC_WEB
    client = await stack.enter_async_context(
        ApexServiceClient(
            url,
            protocol=kind[protocol.removesuffix("-json").removesuffix("-proto")],
            proto_json=protocol.endswith("-json"),
            http_client=h2_client(),
        )
    )
    request = pb.ChatCompletionRequest(
        messages=[pb.ChatMessage(role="user", content="hello there")]
    )

    async def unary() -> None:
        answer = await client.chat_completion(request)
        assert answer.choices[0].message.content == "echo: hello there"

    async def stream() -> int:
        return sum([1 async for _ in client.chat_completion_stream(request)])

    return unary, stream


def bare_calls(url: str) -> tuple[Unary, Stream]:
    client = h2_client()
    body = json.dumps(REQUEST.to_wire()).encode()

    async def unary() -> None:
        answer = await client.post(
            f"{url}{SERVICE}/ChatCompletion", {"content-type": "application/json"}, body
        )
        assert answer.status == 200 and b"echo: hello there" in answer.content

    async def stream() -> int:
        headers = {"content-type": "application/connect+json"}
        buffer = bytearray()
        url_ = f"{url}{SERVICE}/ChatCompletionStream"
        async with client.stream("POST", url_, headers, envelope(body)) as response:
            async for data in response.content:
                buffer += data
        count, offset = 0, 0
        while offset < len(buffer):
            flags, size = struct.unpack_from(">BI", buffer, offset)
            count += not flags & 2
            offset += 5 + size
        return count

    return unary, stream


async def rate(call: Callable[[], Awaitable[Any]], seconds: float, concurrency: int) -> float:
    """Calls (or, when ``call`` returns a count, items) per second, ``concurrency`` at a time."""
    done = 0.0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            done += await call() or 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def measure(
    urls: dict[str, str], seconds: float, rounds: int, concurrency: int
) -> dict[str, dict[str, list[float]]]:
    """{target: {"unary": [rate per round], "stream": [...]}} for "bare" and each protocol."""
    targets = ["bare", *PROTOCOLS]
    rates: dict[str, dict[str, list[float]]] = {t: {"unary": [], "stream": []} for t in targets}
    for round_ in range(rounds):
        for target in targets if round_ % 2 == 0 else targets[::-1]:
            # A fresh client (one connection) each time, its connection and first-call
            # costs paid before timing.
            async with AsyncExitStack() as stack:
                if target == "bare":
                    unary, stream = bare_calls(urls["bare"])
                else:
                    unary, stream = await gateway_calls(urls["gateway"], target, stack)
                await rate(unary, 0.1, concurrency)
                await rate(stream, 0.1, concurrency)
                rates[target]["unary"].append(await rate(unary, seconds, concurrency))
                rates[target]["stream"].append(await rate(stream, seconds, concurrency))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=50, help="chunks per stream")
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight")
    parser.add_argument("--serve", choices=["gateway", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.chunks)
        return

    with server_process("bare", args.chunks) as bare, server_process("gateway", args.chunks) as gw:
        urls = {"bare": bare, "gateway": gw}
        rates = asyncio.run(measure(urls, args.seconds, args.rounds, args.concurrency))

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(
        f"command: python -m bench.gateway_protocols --seconds {args.seconds:g} "
        f"--rounds {args.rounds} --chunks {args.chunks} --concurrency {args.concurrency}"
    )
    print(
        f"HTTP/2 h2c, {args.concurrency} call(s) in flight, {args.chunks} chunks per stream; "
        f"medians over {args.rounds} rounds, ratio to the bare app of the same round"
    )
    print(f"{'target':<14} {'unary RPC/s':>11}  {'x bare (min-max)':<20} {'chunks/s':>9}  x bare")
    for target, of in rates.items():
        line = f"{target:<14} {statistics.median(of['unary']):>11.0f}  "
        if target == "bare":
            print(line + f"{'':<20} {statistics.median(of['stream']):>9.0f}")
            continue
        cells = []
        for mode in ("unary", "stream"):
            ratios = [r / b for r, b in zip(of[mode], rates["bare"][mode], strict=True)]
            cells.append(f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
        print(line + f"{cells[0]:<20} {statistics.median(of['stream']):>9.0f}  {cells[1]}")


if __name__ == "__main__":
    main()
