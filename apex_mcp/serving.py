"""Serving an ASGI app with hypercorn (HTTP/2 with prior knowledge or TLS, and HTTP/1.1)
until SIGINT or SIGTERM: shared by the gateway and the MCP server over HTTP."""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
from typing import Any


async def serve_until_signalled(app: Any, host: str, port: int) -> None:
    import anyio
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 3
    # hypercorn closes a connection after 1,000 requests by default, resetting the streams in
    # flight on it: a client's writes would fail although done. Keep connections instead.
    config.keep_alive_max_requests = sys.maxsize
    stop = anyio.Event()

    async def watch_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stop.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals)
        await serve(app, config, shutdown_trigger=stop.wait)
        tg.cancel_scope.cancel()


def serve_stdio_until_signalled(mcp: Any) -> None:
    """Serve an MCPServer over stdio until stdin ends or SIGINT / SIGTERM comes. On a signal
    the server's lifespan closes as at the end of stdin, so the research runner hands its
    running jobs back to the queue (the next process resumes them) instead of dying with
    them, and the process exits."""
    import anyio
    from mcp.server.stdio import stdio_server

    async def main() -> None:
        server = mcp._lowlevel_server
        signalled = False
        async with stdio_server() as (read_stream, write_stream):
            async with anyio.create_task_group() as tg:

                async def watch_signals() -> None:
                    nonlocal signalled
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            signalled = True
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_signals)
                options = server.create_initialization_options()
                await server.run(read_stream, write_stream, options)
                tg.cancel_scope.cancel()
            if signalled:
                # The server is closed. stdin's reader is a thread blocked in read(), which
                # nothing can interrupt, so waiting for it could last forever: leave now.
                sys.stderr.flush()
                os._exit(0)

    anyio.run(main)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def discard_request_body(receive: Any, limit: int = 64 * 1024 * 1024) -> None:
    """Read and drop what is left of a request's body, before answering it without reading
    it: hypercorn drops the connection (and a request waiting on it) when a body arrives after
    its answer."""
    size = 0
    while size < limit:
        event = await receive()
        if event["type"] != "http.request":
            return
        size += len(event.get("body", b""))
        if not event.get("more_body", False):
            return
