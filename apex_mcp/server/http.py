"""The MCP server over HTTP: streamable HTTP at ``/mcp``, and for clients that speak only the
2024-11-05 transport, HTTP+SSE at ``/sse`` (its messages to ``/messages/``). Host/Origin checks
on, bearer tokens (static ones, or OAuth access tokens: see ``auth``) required when it listens
beyond loopback (unless a hosting platform in front authenticates, with per-session
configuration), a health endpoint, and where hosts look for OAuth metadata, this server's
(RFC 9728) or, without OAuth, a plain 404."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._http import drain_body, header, send_whole
from ..config import Settings
from ..serving import is_loopback, serve_until_signalled
from .app import running_state
from .state import AppState

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})
# RFC 8615 metadata (OAuth discovery, OpenID configuration): public by definition, and absent
# here. Hosts probe it; a 401 there reads to them as a failed sign-in, a 404 as "no OAuth".
WELL_KNOWN = "/.well-known/"
NO_OAUTH = (
    "this server does not use OAuth: clients send its token, if it has one (APEX_HTTP_TOKEN), "
    "as 'Authorization: Bearer <token>'"
)
PROTECTED_RESOURCE = "/.well-known/oauth-protected-resource"
SSE_PATH = "/sse"
MESSAGES_PATH = "/messages/"
SSE_WITH_SESSION_CONFIG = (
    "the HTTP+SSE transport (/sse) is not served with APEX_HTTP_SESSION_CONFIG: sessions bring "
    "their settings in the query string of /mcp, which the platform in front speaks "
    "(streamable HTTP); connect to /mcp"
)
SSE_WHEN_STATELESS = (
    "the HTTP+SSE transport (/sse) is not served with APEX_HTTP_STATELESS: its session lives "
    "in one replica, and its messages may reach another; connect to /mcp (streamable HTTP)"
)


def is_open(path: str) -> bool:
    """Whether a path answers without a token or session settings."""
    return path in OPEN_PATHS or path.startswith(WELL_KNOWN)


def security_for(host: str, port: int, settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: only our own Host names, only browser Origins we serve."""
    hosts = {"127.0.0.1", "localhost", "[::1]"}
    if host not in ("0.0.0.0", "::"):
        hosts.add(f"[{host}]" if ":" in host else host)
    allowed_hosts = [f"{h}:{port}" for h in sorted(hosts)] + list(settings.http_allowed_hosts)
    allowed_origins = [f"http://{h}:{port}" for h in sorted(hosts)] + list(
        settings.http_allowed_origins
    )
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
    )


def create_http_app(mcp: MCPServer[AppState], settings: Settings, host: str, port: int) -> Any:
    """The ASGI app: ``/mcp`` (streamable HTTP), ``/sse`` and ``/messages/`` (HTTP+SSE),
    ``/healthz``, behind a bearer check when tokens or OAuth are set. Refuses to build without
    either for a non-loopback address."""
    from .auth import AuthGate, Protection, resource_metadata_url, tool_permissions

    resource_url = settings.oauth_resource_url or default_resource_url(host, port)
    protection = Protection.of(settings, resource_url)
    if protection is None and not is_loopback(host):
        if not settings.http_session_config:
            raise SystemExit(
                f"refusing to serve MCP on {host} without a token: set APEX_HTTP_TOKEN "
                "(clients send it as 'Authorization: Bearer <token>'), APEX_HTTP_TOKENS or "
                "APEX_OAUTH_ISSUER, or listen on 127.0.0.1"
            )
        log.warning(
            "serving MCP on %s without a token: APEX_HTTP_SESSION_CONFIG trusts the platform "
            "in front to authenticate clients; never expose this port directly",
            host,
        )

    @mcp.custom_route("/healthz", methods=["GET"])  # type: ignore[untyped-decorator]
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    oauth = protection is not None and protection.oauth is not None
    if oauth and settings.oauth_resource_url is None and not is_loopback(host):
        log.warning(
            "APEX_OAUTH_RESOURCE_URL is not set: the tokens must be for %s; set it to the URL "
            "clients reach this server's /mcp by",
            resource_url,
        )
    # RFC 9728: at the well-known path followed by the resource's path, and (as some hosts
    # look for it) at the well-known path alone.
    metadata_paths = {PROTECTED_RESOURCE, url_path(resource_metadata_url(resource_url))}

    @mcp.custom_route(WELL_KNOWN + "{name:path}", methods=["GET"])  # type: ignore[untyped-decorator]
    async def well_known(request: Request) -> Response:
        if protection is not None and protection.oauth is not None:
            if request.url.path.rstrip("/") in metadata_paths:
                return JSONResponse(protection.metadata_document())
            message = (
                f"this server's authorization server is {protection.oauth.issuer}: see "
                f"{PROTECTED_RESOURCE}"
            )
            return JSONResponse({"error": "not_found", "message": message}, status_code=404)
        return JSONResponse({"error": "not_found", "message": NO_OAUTH}, status_code=404)

    hide_session_ids()
    security = security_for(host, port, settings)
    app: Any = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=security,
        host=host,
        stateless_http=settings.http_stateless,
    )
    app = CancelOnDisconnect(app)
    refusal = None
    if settings.http_stateless:
        app = RefuseSubscriptions(app)
        refusal = SSE_WHEN_STATELESS
    if settings.http_session_config:
        app = SessionConfigGate(app)
        refusal = SSE_WITH_SESSION_CONFIG
    app = BodyLimitGate(LegacySse(app, mcp, security, refusal=refusal))
    if protection is None:
        return app
    return AuthGate(app, protection, is_open, tool_permissions())


def default_resource_url(host: str, port: int) -> str:
    """This server's /mcp URL as a client on the same machine reaches it (the resource the
    tokens must be for, unless APEX_OAUTH_RESOURCE_URL says another)."""
    if host in ("0.0.0.0", "::", "localhost"):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/mcp"


def url_path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


async def _refuse(
    receive: Any, send: Any, status: int, body: dict[str, str], *headers: tuple[bytes, bytes]
) -> None:
    await drain_body(receive)
    await send_whole(send, status, json.dumps(body).encode(), "application/json", headers)


# The SDK's transports log session ids (at INFO, some at WARNING): a session id is what lets
# a request into its session, so it stays out of logs.
SESSION_ID_LOGGERS = (
    "mcp.server.streamable_http_manager",
    "mcp.server.streamable_http",
    "mcp.server.sse",
)
_SESSION_ID = re.compile(
    r"(?i)\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b"
)
_GIVEN_ID = re.compile(r"(?i)(session id: |for id: )\S.*")  # what a client sent, whatever it is


class HideSessionIds(logging.Filter):
    """Logging filter: session ids in a record's message read ``<session id>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's to report, not ours
            return True
        hidden = _GIVEN_ID.sub(r"\1<session id>", _SESSION_ID.sub("<session id>", message))
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


def hide_session_ids() -> None:
    for name in SESSION_ID_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HideSessionIds) for f in logger.filters):
            logger.addFilter(HideSessionIds())


class CancelOnDisconnect:
    """ASGI middleware: a handshake-era request whose client hangs up before its answer is
    cancelled, as if the client had sent ``notifications/cancelled``, so that the call it
    started (a miner's answer, a search) stops instead of running for nobody. (A session
    without an event store cannot deliver that answer later; 2026-07-28 requests are
    cancelled by the SDK itself when their stream closes.)"""

    MAX_BODY = 1 << 20  # a request larger than this is not read for its id

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        if scope["type"] != "http" or scope["method"] != "POST" or b"mcp-session-id" not in headers:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        answered = hung_up = False

        async def watched_receive() -> Any:
            nonlocal hung_up
            message = await receive()
            if message["type"] == "http.request" and len(body) <= self.MAX_BODY:
                body.extend(message.get("body", b""))
            elif message["type"] == "http.disconnect" and not answered:
                hung_up = True
            return message

        async def watched_send(message: Any) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        try:
            await self.app(scope, watched_receive, watched_send)
        finally:
            if hung_up and not answered:
                with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                    for request_id in _request_ids(bytes(body)):
                        await self._cancel(scope, request_id)

    async def _cancel(self, scope: Any, request_id: Any) -> None:
        cancelled = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": request_id, "reason": "the client disconnected"},
        }
        data = json.dumps(cancelled).encode()
        kept = [
            (name, value)
            for name, value in scope["headers"]
            if name not in (b"content-length", b"content-type", b"accept")
        ]
        notice = {
            **scope,
            "headers": [
                *kept,
                (b"content-type", b"application/json"),
                (b"accept", b"application/json, text/event-stream"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
        sent = False

        async def receive() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            await anyio.sleep_forever()

        async def discard(message: Any) -> None:
            pass

        try:
            await self.app(notice, receive, discard)
        except Exception as error:  # the session may be gone too: nothing left to stop
            log.debug("could not cancel a request of a client that left: %r", error)


def _request_ids(body: bytes) -> list[Any]:
    """The ids of the JSON-RPC requests in a POST body (none if it is not JSON-RPC)."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return []
    messages = decoded if isinstance(decoded, list) else [decoded]
    return [
        m["id"]
        for m in messages
        if isinstance(m, dict)
        and isinstance(m.get("id"), str | int)
        and isinstance(m.get("method"), str)
        and m["method"] != "initialize"
    ]


SUBSCRIBE_WHEN_STATELESS = (
    "resources/subscribe is not served with APEX_HTTP_STATELESS: without a session, the "
    "server has nowhere to send the updates; read the resource again to follow it, or "
    "connect as a 2026-07-28 client (subscriptions/listen)"
)


class RefuseSubscriptions:
    """ASGI middleware for stateless HTTP: a handshake-era ``resources/subscribe`` is answered
    with a JSON-RPC error saying why, rather than accepted and never heard of again (the
    connection it would notify ends with the request)."""

    PEEK = 64 << 10  # a subscribe request is small: a larger body is something else

    def __init__(self, app: Any) -> None:
        from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

        self.app = app
        self._handshake_era = {"", *HANDSHAKE_PROTOCOL_VERSIONS}  # "": no version header

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # The SDK serves a request of a newer version without a session whatever the setting.
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or header(scope, b"mcp-protocol-version") not in self._handshake_era
        ):
            await self.app(scope, receive, send)
            return
        read: list[Any] = []
        size = 0
        while size <= self.PEEK:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
            size += len(message.get("body", b""))
        body = b"".join(m.get("body", b"") for m in read if m["type"] == "http.request")
        request_id = _subscribe_id(body)
        if request_id is not None:
            error = {"code": -32601, "message": SUBSCRIBE_WHEN_STATELESS}
            answer = {"jsonrpc": "2.0", "id": request_id, "error": error}
            await send_whole(send, 200, json.dumps(answer).encode(), "application/json")
            return

        async def replay() -> Any:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)


def _subscribe_id(body: bytes) -> Any:
    """The id of a ``resources/subscribe`` request, if that is what the body is."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("method") == "resources/subscribe":
        return message.get("id")
    return None


class SessionConfigGate:
    """ASGI middleware: a request whose session configuration (the query string) cannot be
    used gets 400 saying what to fix, before it reaches MCP."""

    def __init__(self, app: Any) -> None:
        from . import sessions  # only servers that take session settings need it

        self.app = app
        self._sessions = sessions

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not is_open(scope["path"]):
            try:
                self._sessions.parse_query(scope.get("query_string", b""))
            except self._sessions.SessionConfigError as error:
                body = {"error": "invalid_session_config", "message": str(error)}
                await _refuse(receive, send, 400, body)
                return
        await self.app(scope, receive, send)


class BodyLimitGate:
    """ASGI middleware: a request that declares a body over the MCP SDK's limit gets 413
    saying so. The SDK answers 413 without reading the body, and hypercorn then drops the
    connection: the client saw a reset, not the reason."""

    def __init__(self, app: Any) -> None:
        from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE

        self.app = app
        self.limit = DEFAULT_MAX_REQUEST_BODY_SIZE

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limit:
                message = (
                    f"the request is {int(declared):,} bytes, over the limit of "
                    f"{self.limit:,}: send less (a prompt holds at most 1,000,000 characters)"
                )
                await _refuse(receive, send, 413, {"error": "too_large", "message": message})
                return
        await self.app(scope, receive, send)


class LegacySse:
    """ASGI middleware: the 2024-11-05 HTTP+SSE transport beside streamable HTTP, on the same
    server state. ``GET /sse`` opens a session's event stream, whose first event names the
    URL to post its messages to (``/messages/?session_id=...``); the answers come on the
    stream. Host and Origin are checked as for ``/mcp``. With ``refusal``, both answer 400
    with it instead."""

    def __init__(
        self,
        app: Any,
        mcp: MCPServer[AppState],
        security: TransportSecuritySettings,
        *,
        refusal: str | None,
    ) -> None:
        from mcp.server.sse import SseServerTransport
        from mcp.server.transport_security import TransportSecurityMiddleware

        self.app = app
        self._mcp = mcp
        self._transport = SseServerTransport(MESSAGES_PATH, security_settings=security)
        self._guard = TransportSecurityMiddleware(security)
        self._refusal = refusal

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if path != SSE_PATH and not path.startswith(MESSAGES_PATH):
            await self.app(scope, receive, send)
        elif self._refusal is not None:
            body = {"error": "sse_not_served", "message": self._refusal}
            await _refuse(receive, send, 400, body)
        elif path == SSE_PATH:
            await self._stream(scope, receive, send)
        else:
            await self._transport.handle_post_message(scope, receive, send)

    async def _stream(self, scope: Any, receive: Any, send: Any) -> None:
        from mcp.server.runner import serve_dual_era_loop

        if scope["method"] != "GET":
            body = {"error": "method_not_allowed", "message": f"{SSE_PATH} takes GET"}
            await _refuse(receive, send, 405, body, (b"allow", b"GET"))
            return
        refused = await self._guard.validate_request(Request(scope, receive), is_post=False)
        if refused is not None:
            await refused(scope, receive, send)
            return
        server = self._mcp._lowlevel_server  # no public way to serve a stream on mcp 2.3
        async with self._transport.connect_sse(scope, receive, send) as (reader, writer):
            await serve_dual_era_loop(
                server,
                reader,
                writer,
                lifespan_state=running_state(self._mcp),
                init_options=server.create_initialization_options(),
            )


async def serve_http(mcp: MCPServer[AppState], settings: Settings, host: str, port: int) -> None:
    # HTTP/1.1 (uvicorn), as the SDK's own server: MCP clients speak it, and it costs less.
    app = create_http_app(mcp, settings, host, port)
    await serve_until_signalled(app, host, port, http2=False)
