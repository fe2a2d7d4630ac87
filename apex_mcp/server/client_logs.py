"""The server's own warnings and errors, sent to MCP clients as log notifications
(``notifications/message``), besides stderr.

Who hears a record of the ``apex_mcp`` loggers:

- one logged while a client's request is handled (a miner failing over during its chat) goes
  to that client alone, on that request's stream;
- any other (a research job failing in the background, the backend failing to start) goes to
  every connected client: they are all the one user the server serves. With per-session
  configuration (``APEX_HTTP_SESSION_CONFIG``) each session is a user of its own, so such a
  record goes to nobody, unless it is marked as concerning every client
  (``extra={EVERY_CLIENT: True}``: the backend itself failing); the sessions' own requests
  still hear what happens while they are handled.

Levels: a client of the handshake protocol gets what it asked for with ``logging/setLevel``
(warnings and above until it asks); a 2026-07-28 client, which has no ``logging/setLevel``,
gets for each request what that request's ``_meta`` opts in to, and nothing otherwise. The
server sends nothing below its own log level (``APEX_LOG_LEVEL``). The text is scrubbed of the
settings' secrets, the session's keys and the credentials and query strings of URLs. A client
that is gone or slow costs a bounded wait; records past a backlog are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import anyio
from mcp.server.connection import allowed_log_levels
from mcp_types import (
    EmptyResult,
    LoggingLevel,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
    SetLevelRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, SecretStr

from .state import HANDLING, connection_of

if TYPE_CHECKING:
    from anyio.abc import TaskStatus
    from mcp.server import ServerRequestContext

    from ..config import Settings

log = logging.getLogger(__name__)

EVERY_CLIENT = "to_every_client"  # a record's extra: it concerns every client, and is safe for all
LEVELS: tuple[LoggingLevel, ...] = get_args(LoggingLevel)  # least severe first
DEFAULT_LEVEL: LoggingLevel = "warning"  # for a client that never sent logging/setLevel
MAX_BACKLOG = 256
SEND_TIMEOUT = 2.0  # seconds a notification may wait on a client that does not read

Notify = Callable[[str, dict[str, Any]], Awaitable[Any]]  # (method, params)

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_URL_QUERY = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s?#]*)\?[^\s#]*")


_BY_SEVERITY: tuple[tuple[int, LoggingLevel], ...] = (
    (logging.CRITICAL, "critical"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warning"),
    (logging.INFO, "info"),
)


def mcp_level(levelno: int) -> LoggingLevel:
    """The MCP level of a Python logging level."""
    return next((level for threshold, level in _BY_SEVERITY if levelno >= threshold), "debug")


def at_least(level: LoggingLevel, threshold: LoggingLevel) -> bool:
    return LEVELS.index(level) >= LEVELS.index(threshold)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` without the given secrets, URL credentials and URL query strings."""
    for secret in sorted(secrets, key=len, reverse=True):  # a key containing another first
        text = text.replace(secret, "***")
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    return _URL_QUERY.sub(r"\1?***", text)


def secrets_in(value: Any) -> set[str]:
    """Every secret a settings object holds, however deep, and the keys its miners read from
    the environment."""
    found: set[str] = set()
    if isinstance(value, SecretStr):
        found.add(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found |= secrets_in(getattr(value, name))
        resolve = getattr(value, "resolved_api_key", None)  # a miner's key in the environment
        if callable(resolve):
            found |= secrets_in(resolve())
    elif isinstance(value, dict):
        for item in value.values():
            found |= secrets_in(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            found |= secrets_in(item)
    return {s for s in found if s.strip()}


@dataclass(eq=False)
class _Record:
    level: LoggingLevel
    logger: str
    text: str
    request: ServerRequestContext[Any] | None  # the request it was logged in, if any
    every_client: bool


class ClientLogs(logging.Handler):
    """A logging handler that forwards records to the clients of one MCP server.

    ``run`` (in the server's lifespan) attaches it to the ``apex_mcp`` logger and sends what
    it queued; ``middleware`` tells it which clients and requests there are; ``set_level``
    serves ``logging/setLevel``.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(logging.DEBUG)
        self._per_session = settings.http_session_config
        self._secrets = secrets_in(settings)
        # Handshake-era connections -> the level each asked for; gone with their connection.
        self._clients: weakref.WeakKeyDictionary[Any, LoggingLevel] = weakref.WeakKeyDictionary()
        self._handling: dict[int, ServerRequestContext[Any]] = {}  # requests in flight
        self._backlog: deque[_Record] = deque(maxlen=MAX_BACKLOG)
        self._lock = threading.Lock()  # records may come from worker threads
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake: anyio.Event | None = None

    # --- the server's side -----------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Forward records until cancelled."""
        self._wake = anyio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        apex_logger = logging.getLogger("apex_mcp")
        apex_logger.addHandler(self)
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()  # before taking: a record after it wakes us again
                for record in self._take(lambda _: True):
                    await self._send(record)
        finally:
            apex_logger.removeHandler(self)

    async def middleware(
        self, ctx: ServerRequestContext[Any], call_next: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        """Server middleware: know each client, and each request while it is handled; what a
        request logged is sent before its answer."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._know(connection_of(ctx.session))
        if ctx.request_id is None:  # a notification: nothing to answer, no stream to log on
            return await call_next(ctx)
        self._handling[id(ctx)] = ctx
        try:
            try:
                result = await call_next(ctx)
            except Exception:
                await self._flush(ctx)
                raise
            await self._flush(ctx)
            return result
        finally:
            del self._handling[id(ctx)]

    async def _flush(self, ctx: ServerRequestContext[Any]) -> None:
        if not self._backlog:  # as after most requests: no lock to take, nothing to scan
            return
        for record in self._take(lambda r: r.request is ctx):
            await self._send(record)

    async def set_level(
        self, ctx: ServerRequestContext[Any], params: SetLevelRequestParams
    ) -> EmptyResult:
        """``logging/setLevel``: this client hears ``params.level`` and above from now on."""
        connection = connection_of(ctx.session)
        self._know(connection)
        self._clients[connection] = params.level
        return EmptyResult()

    def _know(self, connection: Any) -> None:
        if connection not in self._clients:
            self._clients[connection] = DEFAULT_LEVEL
            stack = getattr(connection, "exit_stack", None)
            if stack is not None:  # forget it as soon as it closes
                stack.callback(self._clients.pop, connection, None)

    # --- the logging side ------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == __name__:  # its own troubles stay on stderr
            return
        try:
            queued = self._record_of(record)
        except Exception:
            self.handleError(record)
            return
        if queued is None:
            return
        with self._lock:
            self._backlog.append(queued)
        self._wake_up()

    def _record_of(self, record: logging.LogRecord) -> _Record | None:
        request = HANDLING.get()
        if request is not None and id(request) not in self._handling:
            # A task a request started, still running after it was answered: a 2026-07-28
            # client has no stream left to hear it on, and a session's must not be guessed at.
            modern = request.protocol_version in MODERN_PROTOCOL_VERSIONS
            if modern or self._per_session:
                return None
        every_client = bool(getattr(record, EVERY_CLIENT, False))
        if request is None and self._per_session and not every_client:
            return None
        secrets = set(self._secrets)
        if request is not None and self._per_session:
            secrets |= _session_secrets(request)
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text += f" ({type(error).__name__}: {error})"
        return _Record(
            mcp_level(record.levelno), record.name, scrub(text, secrets), request, every_client
        )

    def _wake_up(self) -> None:
        wake, loop = self._wake, self._loop
        if wake is None or loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(wake.set)

    def _take(self, wanted: Callable[[_Record], bool]) -> list[_Record]:
        with self._lock:
            taken = [r for r in self._backlog if wanted(r)]
            for record in taken:
                self._backlog.remove(record)
        return taken

    # --- sending ---------------------------------------------------------------------------

    async def _send(self, record: _Record) -> None:
        request = record.request
        if request is None:
            for connection, level in list(self._clients.items()):
                if at_least(record.level, level):
                    await self._deliver(connection.notify, record)
        elif id(request) in self._handling:
            if request.protocol_version in MODERN_PROTOCOL_VERSIONS:
                allowed = record.level in allowed_log_levels(request.protocol_version, request.meta)
            else:
                allowed = at_least(record.level, self._level_of(request))
            if allowed:
                await self._deliver(self._on_stream_of(request), record)
        else:  # its request is answered: the client's connection, if it still listens
            connection = connection_of(request.session)
            if connection in self._clients and at_least(record.level, self._clients[connection]):
                await self._deliver(connection.notify, record)

    def _level_of(self, request: ServerRequestContext[Any]) -> LoggingLevel:
        return self._clients.get(connection_of(request.session), DEFAULT_LEVEL)

    @staticmethod
    def _on_stream_of(request: ServerRequestContext[Any]) -> Notify:
        async def notify(method: str, params: dict[str, Any]) -> None:
            notification = LoggingMessageNotification(
                params=LoggingMessageNotificationParams.model_validate(params)
            )
            await request.session.send_notification(notification, request.request_id)

        return notify

    @staticmethod
    async def _deliver(notify: Notify, record: _Record) -> None:
        params = {"level": record.level, "logger": record.logger, "data": record.text}
        try:
            with anyio.move_on_after(SEND_TIMEOUT):
                await notify("notifications/message", params)
        except Exception as error:  # a client gone: nothing to tell it
            log.debug("a log notification was not delivered: %r", error)


def _session_secrets(request: ServerRequestContext[Any]) -> set[str]:
    """The keys the request's session brings in its query string."""
    from .sessions import SessionConfigError, parse_query

    http = request.request
    if http is None:
        return set()
    try:
        return secrets_in(parse_query(http.scope.get("query_string", b"")))
    except SessionConfigError:
        return set()
