"""What the server holds while it runs: the ApexClient, and who listens to which research job."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from ..apex import models as m
from ..apex.client import ApexClient, research_news
from ..apex.errors import ApexError, Code

if TYPE_CHECKING:
    from mcp.server import ServerRequestContext
    from mcp.server.subscriptions import SubscriptionBus

    from ..config import Settings
    from .sessions import SessionClients

log = logging.getLogger(__name__)

# The MCP request being handled, for the handlers that get no context (static resources) and
# for choosing a session's client; set by ``remember_request``.
HANDLING: ContextVar[ServerRequestContext[Any] | None] = ContextVar("handling", default=None)


async def remember_request(
    ctx: ServerRequestContext[Any], call_next: Callable[[Any], Awaitable[Any]]
) -> Any:
    """Server middleware: make the request being handled known to ``AppState.apex``."""
    token = HANDLING.set(ctx)
    try:
        return await call_next(ctx)
    finally:
        HANDLING.reset(token)


async def follow_listened_research(
    ctx: ServerRequestContext[Any], call_next: Callable[[Any], Awaitable[Any]]
) -> Any:
    """Server middleware: a 2026-07-28 client that listens to a research job's resource hears
    of each step, as a handshake-era subscriber does, whoever started the job."""
    if ctx.method == "subscriptions/listen" and isinstance(ctx.params, Mapping):
        wanted = ctx.params.get("notifications")
        uris = wanted.get("resourceSubscriptions") if isinstance(wanted, Mapping) else None
        state: AppState = ctx.lifespan_context
        for uri in uris if isinstance(uris, list) else []:
            if isinstance(uri, str):
                await follow_or_refuse(state, uri)
    return await call_next(ctx)


async def follow_or_refuse(state: AppState, uri: str) -> None:
    """``state.follow``, a job the caller cannot read refused as a resource not found."""
    from mcp.shared.exceptions import MCPError

    try:
        await state.follow(uri)
    except ApexError as error:
        raise MCPError(RESOURCE_NOT_FOUND, f"{uri}: {error.message}") from None


RESOURCE_NOT_FOUND = -32002  # the MCP spec's code for a resource that is not there
_FORGETS_SUBSCRIPTIONS = "apex-mcp:forgets-subscriptions"  # in a connection's state
FINISHED = frozenset({"completed", "failed", "cancelled"})


def research_uri(job_id: str) -> str:
    return f"apex://research/{job_id}"


@dataclass
class AppState:
    settings: Settings
    bus: SubscriptionBus
    tasks: TaskGroup
    research_poll_seconds: float = 1.0
    # The clients (of the handshake protocol) subscribed to each resource URI: connection ->
    # a session of it to send through.
    subscribers: dict[str, dict[object, Any]] = field(default_factory=dict)
    _watched: set[str] = field(default_factory=set)
    # The ApexClient opens in the background, so that a host's tools/list does not wait on it.
    _client: ApexClient | None = None
    _failure: str | None = None
    _ready: anyio.Event = field(default_factory=anyio.Event)
    wanted: anyio.Event = field(default_factory=anyio.Event)
    # Per-session clients, when sessions bring their own configuration (hosted over HTTP).
    sessions: SessionClients | None = None

    async def apex(self) -> ApexClient:
        """The ApexClient of the request being handled, once open: the server's own, or with
        per-session configuration, the one its session configured. An ApexError saying why if
        it could not open."""
        if not self._ready.is_set():  # waiting on a set anyio Event still yields to the loop
            self.wanted.set()
            await self._ready.wait()
        if self._client is None:
            raise ApexError(
                Code.FAILED_PRECONDITION,
                f"the Apex backend could not start: {self._failure} (run `apex-mcp doctor`)",
            )
        if self.sessions is None:
            return self._user_client(self._client)
        request = HANDLING.get()
        if request is None:  # fail closed: never the server's own user by accident
            raise ApexError(Code.INTERNAL, "a call outside any session's request")
        from ..engine import LocalApex

        if not isinstance(self._client, LocalApex):  # the settings refuse it (a remote backend)
            raise ApexError(
                Code.FAILED_PRECONDITION,
                "sessions bring their settings only to the embedded engine",
            )
        return await self.sessions.client_for(request, self._client)

    def _user_client(self, client: ApexClient) -> ApexClient:
        """``client`` as the caller of the request being handled sees it: their own user's
        view when callers are users (OAuth, several tokens); else the server's one user."""
        if not self.settings.serves_users:  # everyone is the server's one user
            return client
        from .auth import caller_of

        caller = caller_of(HANDLING.get())
        if caller is None:  # fail closed: never another's data by accident
            raise ApexError(Code.INTERNAL, "a call outside any authenticated request")
        if caller.user is None:  # the one shared token: the server's own user
            return client
        from ..engine import LocalApex

        if not isinstance(client, LocalApex):  # the settings refuse it (a remote backend)
            raise ApexError(Code.FAILED_PRECONDITION, "users of their own need the embedded engine")
        return client.for_user(caller.user)

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def opened(self, client: ApexClient) -> None:
        self._client = client
        self._ready.set()

    def failed(self, reason: str) -> None:
        self._failure = reason
        self._ready.set()

    async def notify(self, uri: str) -> None:
        """Tell everyone subscribed to ``uri`` that it changed."""
        from mcp.server.subscriptions import ResourceUpdated

        await self.bus.publish(ResourceUpdated(uri=uri))
        subscribed = self.subscribers.get(uri, {})
        for connection, session in list(subscribed.items()):
            try:
                await session.send_resource_updated(uri)
            except Exception as error:  # a client that went away: forget it, tell the rest
                log.debug("dropped a subscriber of %s: %r", uri, error)
                self._drop(uri, connection)

    def subscribe(self, uri: str, session: Any) -> None:
        connection = connection_of(session)
        self.subscribers.setdefault(uri, {})[connection] = session
        # Forgotten when the connection ends (the client leaves, its session is deleted or
        # times out): an ended session must not stay here, and its connection with it.
        scratch = getattr(connection, "state", None)
        if isinstance(scratch, dict) and not scratch.get(_FORGETS_SUBSCRIPTIONS):
            scratch[_FORGETS_SUBSCRIPTIONS] = True
            connection.exit_stack.callback(self._forget, connection)

    def unsubscribe(self, uri: str, session: Any) -> None:
        self._drop(uri, connection_of(session))

    def _drop(self, uri: str, connection: object) -> None:
        subscribed = self.subscribers.get(uri)
        if subscribed is not None:
            subscribed.pop(connection, None)
            if not subscribed:
                del self.subscribers[uri]

    def _forget(self, connection: object) -> None:
        for uri in list(self.subscribers):
            self._drop(uri, connection)

    async def follow(self, uri: str) -> None:
        """Start following ``uri`` for the client of the request being handled, if it is a
        research job (other resources change only through this server's own calls). A job the
        caller cannot read is refused (ApexError NOT_FOUND): nobody hears of another's, be it
        another signed-in user's or another hosted session's."""
        if not uri.startswith("apex://research/"):
            return
        job_id = uri.removeprefix("apex://research/")
        try:
            client = await self.apex()
            await client.get_deep_researcher_job(m.GetDeepResearcherJobRequest(job_id=job_id))
        except ApexError as error:  # reading it will say what is wrong
            if error.code in (Code.NOT_FOUND, Code.INVALID_ARGUMENT):
                raise
            log.info("cannot follow %s: %s", uri, error)
            return
        self.watch_research(job_id, client)

    async def notify_research(self, job_id: str) -> None:
        await self.notify(research_uri(job_id))

    def watch_research(self, job_id: str, client: ApexClient) -> None:
        """Follow a job with ``client`` (its owner's) in the background and notify its
        resource's subscribers as it changes, until it ends. One watcher per job."""
        if job_id not in self._watched:
            self._watched.add(job_id)
            self.tasks.start_soon(self._watch, job_id, client)

    async def _watch(self, job_id: str, client: ApexClient) -> None:
        seen: tuple[str, int] | None = None
        try:
            while True:
                async with research_news(client, job_id) as news:
                    job = await client.get_deep_researcher_job(
                        m.GetDeepResearcherJobRequest(job_id=job_id)
                    )
                    now = (job.status, len(job.result))
                    if now != seen:
                        if seen is not None:
                            await self.notify_research(job_id)
                        seen = now
                    if job.status in FINISHED:
                        return
                    await news(self.research_poll_seconds)
        except ApexError as error:
            log.info("stopped following research job %s: %s", job_id, error)
        finally:
            self._watched.discard(job_id)


def connection_of(session: Any) -> Any:
    """The client connection beneath a request's session."""
    # mcp 2.3 makes a ServerSession per request, so the one that unsubscribes is not the one
    # that subscribed; the connection beneath them is the client's (no public accessor).
    return getattr(session, "_connection", session)
