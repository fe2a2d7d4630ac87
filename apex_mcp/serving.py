"""Serving an ASGI app with hypercorn (HTTP/2 with prior knowledge or TLS, and HTTP/1.1)
until SIGINT or SIGTERM: shared by the gateway and the MCP server over HTTP."""

from __future__ import annotations

import ipaddress
import signal
from typing import Any


async def serve_until_signalled(app: Any, host: str, port: int) -> None:
    import anyio
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 3
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
