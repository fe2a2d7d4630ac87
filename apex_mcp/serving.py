"""Serving the MCP server over stdio, and an ASGI app until SIGINT or SIGTERM: the gateway
with hypercorn (HTTP/2 with prior knowledge or TLS, and HTTP/1.1), the MCP server over HTTP
with uvicorn (HTTP/1.1). And where the settings become the engine's values (``engine_config``)."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import MinerSettings, Settings
    from .engine import EngineConfig, MinerConfig


def engine_config(settings: Settings) -> EngineConfig:
    """The embedded engine's values, from the settings (the engine never reads them)."""
    from .engine import EngineConfig, ResearchLimits

    return EngineConfig(
        db=settings.store_target,
        miners=tuple(engine_miner(entry) for entry in settings.miners),
        discover_local_miners=settings.discover_local_miners,
        miner_calls_per_user=settings.miner_calls_per_user,
        miner_queue_seconds=settings.miner_queue_seconds,
        search_provider=settings.search_provider,
        searxng_url=settings.searxng_url,
        search_api_keys={
            name: key
            for name, key in (
                ("brave", settings.brave_api_key),
                ("tavily", settings.tavily_api_key),
                ("exa", settings.exa_api_key),
            )
            if key is not None
        },
        search_ranking=settings.search_ranking,
        search_requests_per_second=settings.search_requests_per_second,
        search_cache_seconds=settings.search_cache_seconds,
        search_cache_pages=settings.search_cache_pages,
        allow_private_addresses=settings.allow_private_addresses,
        research=ResearchLimits(
            max_concurrent_jobs=settings.research_max_concurrent_jobs,
            max_sources=settings.research_max_sources,
            max_seconds=settings.research_max_seconds,
            heartbeat_seconds=settings.research_heartbeat_seconds,
            session_job_wait_seconds=settings.research_session_job_wait_seconds,
        ),
    )


def engine_miner(entry: MinerSettings) -> MinerConfig:
    """The engine's miner for a configured one (validated already: the same fields)."""
    from .engine import MinerConfig

    return MinerConfig.model_validate(entry, from_attributes=True)


async def serve_stdio(mcp: Any) -> None:
    """Serve MCP over stdin and stdout until the host closes stdin, Ctrl+C or SIGTERM.

    Either signal ends the server as the end of stdin does: its lifespan closes, so the
    research runner hands a running job back to the queue for the next process. (Ctrl+C
    cancels the main task, then raises KeyboardInterrupt; SIGTERM is a clean stop.)"""
    import anyio

    async with anyio.create_task_group() as tg:
        if sys.platform != "win32":
            tg.start_soon(_stop_at_sigterm, tg.cancel_scope)
        await _serve_stdio(mcp)
        tg.cancel_scope.cancel()


async def _stop_at_sigterm(server: Any) -> None:
    import anyio

    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            server.cancel()
            return


async def _serve_stdio(mcp: Any) -> None:
    """The SDK reads stdin in a worker thread, which nothing stops until the next line comes:
    a pipe or a terminal is read here instead, waiting for it in the event loop, so that
    cancelling ends the server at once, cleanly. A pipe or a terminal on stdout is written
    here too: the SDK hops to a worker thread twice for each message it writes, which costs
    more than the write."""
    from contextlib import AsyncExitStack

    from mcp.server.stdio import stdio_server

    if not _waitable(0):  # a file, /dev/null, Windows: reads do not block (or cannot wait)
        await mcp.run_stdio_async()
        return
    server = mcp._lowlevel_server  # no public way to serve other streams on mcp 2.3
    async with AsyncExitStack() as stack:
        lines = await stack.enter_async_context(_stdin_lines())
        output = await stack.enter_async_context(_stdout_output()) if _waitable(1) else None
        read, write = await stack.enter_async_context(stdio_server(stdin=lines, stdout=output))
        await server.run(read, write, server.create_initialization_options())


def _waitable(fd: int) -> bool:
    if sys.platform == "win32":
        return False
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


class _Lines:
    """The lines of a pipe or terminal, as the SDK's stdio transport reads them."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.waitable = True

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        import anyio

        while b"\n" not in self.buffer:
            if self.waitable:
                try:
                    await anyio.wait_readable(self.fd)
                except OSError:  # a poller that cannot watch it (kqueue and a terminal)
                    self.waitable = False
            if self.waitable:
                data = os.read(self.fd, 65536)  # readable: returns what is there at once
            else:
                data = await anyio.to_thread.run_sync(os.read, self.fd, 65536)
            if not data:
                if not self.buffer:
                    raise StopAsyncIteration
                line, self.buffer = self.buffer, b""
                return line.decode("utf-8", errors="replace")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace") + "\n"


@asynccontextmanager
async def _stdin_lines() -> AsyncIterator[Any]:  # the SDK reads it with async for alone
    """stdin's lines, read from a private copy of fd 0 while fd 0 points at the null device
    (as the SDK does: what a tool runs reads nothing of the protocol)."""
    private = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        yield _Lines(private)
    finally:
        os.dup2(private, 0)
        os.close(private)


class _Output:
    """The protocol's output on a pipe or terminal, as the SDK's stdio transport writes it:
    each message written at once, in pieces the pipe takes without blocking, waiting in the
    event loop when it is full (a host that does not read)."""

    def __init__(self, fd: int) -> None:
        import select

        self.fd = fd
        self.pending = bytearray()
        self.piece = select.PIPE_BUF  # writable: at least this much fits without blocking
        self.poll = select.poll()
        self.poll.register(fd, select.POLLOUT)

    async def write(self, text: str) -> int:
        self.pending += text.encode("utf-8")
        return len(text)

    async def flush(self) -> None:
        import anyio

        while self.pending:
            if not self.poll.poll(0):
                # A poller that cannot watch it (kqueue and a terminal): the write may block,
                # as the SDK's would.
                with suppress(OSError):
                    await anyio.wait_writable(self.fd)
            written = os.write(self.fd, self.pending[: self.piece])
            del self.pending[:written]


@asynccontextmanager
async def _stdout_output() -> AsyncIterator[Any]:  # the SDK calls write and flush alone
    """stdout written from a private copy of fd 1 while fd 1 points at stderr (as the SDK
    does: what a tool prints stays off the protocol)."""
    import fcntl

    sys.stdout.flush()
    private = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr: prints go nowhere rather than into the protocol
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    try:
        yield _Output(private)
    finally:
        os.dup2(private, 1)
        os.close(private)


async def serve_until_signalled(app: Any, host: str, port: int, *, http2: bool = True) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM, then shut down gracefully (the
    app's lifespan ends: running research jobs go back to the queue).

    ``http2``: hypercorn, HTTP/1.1 and HTTP/2 (with or without TLS in front), which the
    gateway's gRPC needs. Else uvicorn, HTTP/1.1 only, as the MCP SDK's own server runs it:
    cheaper per request, which is what streamable HTTP clients send.
    """
    import anyio

    _check_port_free(host, port)
    stop = anyio.Event()

    async def watch_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stop.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals)
        if http2:
            await _serve_hypercorn(app, host, port, stop)
        else:
            await _serve_uvicorn(app, host, port, stop)
        tg.cancel_scope.cancel()


async def _serve_hypercorn(app: Any, host: str, port: int, stop: Any) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.errorlog = logging.getLogger("hypercorn.error")  # our log's format, once
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = 3
    # hypercorn closes a connection after 1,000 requests by default, resetting the streams in
    # flight on it: a client's writes would fail although done. Keep connections instead.
    config.keep_alive_max_requests = sys.maxsize
    await serve(app, config, shutdown_trigger=stop.wait)


async def _serve_uvicorn(app: Any, host: str, port: int, stop: Any) -> None:
    import anyio
    import uvicorn

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Ours are watched by serve_until_signalled; uvicorn's would raise the signal
            # again once shut down, and a SIGTERM would end the process with -15, not 0.
            yield

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our log's format
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    server = Server(config)

    async def shut_down_when_told() -> None:
        await stop.wait()
        server.should_exit = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(shut_down_when_told)
        await server.serve()
        tg.cancel_scope.cancel()


def _check_port_free(host: str, port: int) -> None:
    """One line, not hypercorn's traceback, when the address cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise SystemExit(f"apex-mcp: cannot listen on {host}: no such address (--host)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as hypercorn binds
        try:
            sock.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SystemExit(
                    f"apex-mcp: port {port} is in use: choose another with --port"
                ) from None
            raise SystemExit(
                f"apex-mcp: cannot listen on {host}:{port}: {error.strerror} (--host, --port)"
            ) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
