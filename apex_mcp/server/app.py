"""Builds the MCP server: its lifespan owns the one ApexClient every tool goes through."""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import anyio
from mcp.server import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, SubscriptionBus
from mcp_types import SetLevelRequestParams

from .. import __version__
from ..apex.client import ApexClient
from ..config import Settings
from .client_logs import EVERY_CLIENT, ClientLogs
from .inventory import Selection, Toolset
from .state import AppState, follow_listened_research, remember_request
from .tools import ToolSpec, all_tools, build_tool

log = logging.getLogger(__name__)

OPEN_DELAY = 1.0  # seconds

# Each server built, and how to find its state while it runs (for transports that start a
# connection of their own, beside the streamable HTTP manager that entered the lifespan).
_RUNNING: weakref.WeakKeyDictionary[MCPServer[AppState], Callable[[], AppState]] = (
    weakref.WeakKeyDictionary()
)

INSTRUCTIONS = """\
apex-mcp gives you the Apex API of Bittensor's Subnet 1: chat with open LLMs (chat), web \
search with the relevant passage of each page (web_search), deep research jobs that write a \
cited report (deep_research_start, then deep_research_status with wait_seconds), and the \
user's stored chats (list_chats, get_chat, search_chats, ...). Chats are saved unless \
save=false; pass chat_id to continue one."""


def selected_tools(
    settings: Settings, toolsets: Iterable[Toolset] | None = None, *, read_only: bool = False
) -> list[ToolSpec]:
    """The tools to serve: from the chosen toolsets, only the read-only ones in read-only mode,
    and the ones that need a capability beyond apex.v1 only on a backend that has it."""
    selection = Selection.of(settings, toolsets, read_only=read_only)
    return [spec for spec in all_tools() if selection.serves(spec.offer)]


def build_server(
    settings: Settings, toolsets: Iterable[Toolset] | None = None, *, read_only: bool = False
) -> MCPServer[AppState]:
    from . import inventory, resources

    bus = InMemorySubscriptionBus()
    running: list[AppState] = []
    client_logs = ClientLogs(settings)

    @asynccontextmanager
    async def lifespan(server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        async with anyio.create_task_group() as forwarding:
            # First and last: the backend's start and close may have news for the clients.
            await forwarding.start(client_logs.run)
            async with serve(settings, bus) as state:
                running.append(state)
                try:
                    yield state
                finally:
                    running.remove(state)
            forwarding.cancel_scope.cancel()

    def current() -> AppState:
        if not running:
            raise RuntimeError("the server is not running")
        return running[-1]

    selection = Selection.of(settings, toolsets, read_only=read_only)
    tools = [build_tool(spec) for spec in all_tools() if selection.serves(spec.offer)]

    middleware = [remember_request, client_logs.middleware, follow_listened_research]
    if settings.serves_users:  # each caller sees what their scopes allow
        from .auth import permit_by_scope

        middleware.insert(1, permit_by_scope)
    mcp: MCPServer[AppState] = MCPServer(
        "apex-mcp",
        title="Apex (Bittensor SN1)",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        subscriptions=bus,
        log_level=settings.log_level,
        tools=tools,
        middleware=middleware,  # outermost first
    )
    # logging/setLevel, and with it the logging capability, for the handshake protocol
    # versions; the SDK refuses the method at 2026-07-28, which dropped it. MCPServer has no
    # public hook for it (mcp 2.3): the low-level server's.
    mcp._lowlevel_server.add_request_handler(
        "logging/setLevel", SetLevelRequestParams, client_logs.set_level
    )
    resources.register(mcp, selection, inventory.install(mcp, selection))
    _RUNNING[mcp] = current
    return mcp


def running_state(mcp: MCPServer[AppState]) -> AppState:
    """The state of a server built by ``build_server``, while its lifespan runs."""
    return _RUNNING[mcp]()


@asynccontextmanager
async def serve(settings: Settings, bus: SubscriptionBus) -> AsyncIterator[AppState]:
    """The server's state while it runs: the ApexClient opening in the background, the
    watchers of research jobs, the sessions' clients."""
    stop = anyio.Event()
    async with anyio.create_task_group() as holder:
        async with anyio.create_task_group() as watchers:
            state = AppState(
                settings=settings,
                bus=bus,
                tasks=watchers,
                research_poll_seconds=settings.research_poll_seconds
                or (0.5 if settings.resolved_backend == "local" else 3.0),
            )
            if settings.http_session_config:
                from .sessions import SessionClients

                state.sessions = SessionClients(settings, watchers)
            holder.start_soon(hold_client, settings, state, stop)
            try:
                yield state
            finally:
                watchers.cancel_scope.cancel()  # background watchers end with the server
                if state.sessions is not None:
                    with anyio.CancelScope(shield=True):
                        await state.sessions.aclose()
        stop.set()  # then the client closes in its own task, unhurried


async def hold_client(settings: Settings, state: AppState, stop: anyio.Event) -> None:
    """Open the ApexClient, hand it to the state, keep it open until ``stop``.

    It opens when first needed or ``OPEN_DELAY`` after start, whichever comes first: a host
    spawning the server gets its tools/list first, and research jobs a restart interrupted
    still resume without waiting for a call. A server stopped before then, with nothing
    wanting it (``apex-mcp call --list``, a host that only listed the tools), never opens it.
    """
    with anyio.move_on_after(OPEN_DELAY):
        await _first_of(state.wanted, stop)
    if stop.is_set() and not state.wanted.is_set():
        state.failed("the server stopped")
        return
    try:
        async with open_client(settings) as client:
            state.opened(client)
            await stop.wait()
    except Exception as exc:
        if state.is_open:
            log.exception("the Apex backend failed to close cleanly")
        else:  # the server keeps serving: each tool call will say why
            log.error("the Apex backend could not start: %s", exc, extra={EVERY_CLIENT: True})
            state.failed(str(exc) or type(exc).__name__)


async def _first_of(*events: anyio.Event) -> None:
    """Wait until one of ``events`` is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(wait, event)


@asynccontextmanager
async def open_client(settings: Settings) -> AsyncIterator[ApexClient]:
    """The ApexClient the settings ask for: RemoteApex or the embedded engine."""
    if settings.resolved_backend == "remote":
        from ..apex.remote import RemoteApex

        async with RemoteApex(
            settings.base_url, settings.api_key, timeout=settings.timeout
        ) as remote:
            yield remote
    else:
        from ..engine import LocalApex
        from ..serving import engine_config

        async with LocalApex.open(engine_config(settings)) as local:
            yield local


def banner(settings: Settings, tools: list[ToolSpec], transport: str) -> str:
    """One line for stderr at start: what serves, where the data is."""
    if settings.resolved_backend == "remote":
        backend = f"Apex server at {settings.base_url or 'the hosted endpoint'}"
    else:
        backend = f"embedded engine, data in {settings.db}"
    if settings.http_session_config and transport != "stdio":
        backend += ", each session with the settings it brings"
    elif settings.serves_users and transport != "stdio":
        who = [f"{len(settings.http_tokens)} users by token"] if settings.http_tokens else []
        if settings.oauth_issuer:
            who.insert(0, f"people signed in at {settings.oauth_issuer}")
        backend += f", each with their own history ({' and '.join(who)})"
    return f"apex-mcp {__version__} over {transport}: {backend}; {len(tools)} tools"
