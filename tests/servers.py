"""Serve an ASGI app for real (hypercorn, HTTP/1.1 and h2c) on 127.0.0.1 in a background
thread; run processes and wait for things, saying what was awaited when it does not come."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from hypercorn.asyncio import serve
from hypercorn.config import Config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_asgi(app: Any, *, port: int | None = None) -> Iterator[str]:
    """Yield the base URL of ``app`` served by hypercorn until the block ends."""
    port = port or free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()

    async def main() -> None:
        ready.set()
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        # What the app left running (an SSE stream's watcher, say) ends here, not with a
        # "Task was destroyed but it is pending!" when the loop closes.
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait()
    wait_listening(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def wait_listening(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once something accepts connections on the port (or fail if ``process`` died)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"the server exited with {process.returncode}: {err[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            threading.Event().wait(0.01)
    raise RuntimeError(f"waited 60 s for a server to listen on 127.0.0.1:{port}; none did")


def run_process(
    command: list[str], *, what: str, timeout: float, **options: Any
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` (text, output captured) that says what it waited for when the
    command outlives ``timeout``, with the end of what it printed."""
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, **options
        )
    except subprocess.TimeoutExpired as expired:
        printed = _text(expired.stdout) + _text(expired.stderr)
        raise AssertionError(
            f"waited {timeout:g} s for {what}; it did not end. It printed:\n{printed[-3000:]}"
        ) from None


def wait_exit(process: subprocess.Popen[Any], *, what: str, timeout: float) -> int:
    """The exit code of ``process``, killed (and the test failed) if it does not end in time."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"waited {timeout:g} s for {what}; it did not end") from None


@contextmanager
def waiting_for(what: str, seconds: float) -> Iterator[None]:
    """``anyio.fail_after`` that says what it waited for."""
    try:
        with anyio.fail_after(seconds):
            yield
    except TimeoutError:
        raise AssertionError(f"waited {seconds:g} s for {what}; it did not come") from None


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


@contextmanager
def gateway_process(
    db: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``apex-mcp gateway`` as a real process on 127.0.0.1:``port``, killed at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "apex_mcp", "gateway", "--port", str(port), "--db", str(db)],
        env={**os.environ, "APEX_DISCOVER_LOCAL_MINERS": "false", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()
